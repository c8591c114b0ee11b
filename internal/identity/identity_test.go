package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

func TestForServiceAccountAndParse(t *testing.T) {
	tests := []struct {
		name          string
		ns, sa        string
		wantID        string
		wantPrincipal string
		wantErr       bool
	}{
		{name: "default", ns: "default", sa: "sleep", wantID: "spiffe://cluster.local/ns/default/sa/sleep", wantPrincipal: "cluster.local/ns/default/sa/sleep"},
		{name: "control plane", ns: "istio-system", sa: "palisade-control-plane", wantID: identity.ControlPlaneID(td).String(), wantPrincipal: "cluster.local/ns/istio-system/sa/palisade-control-plane"},
		{name: "empty namespace", ns: "", sa: "sleep", wantErr: true},
		{name: "empty service account", ns: "default", sa: "", wantErr: true},
		{name: "slash in namespace", ns: "a/b", sa: "sleep", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := identity.ForServiceAccount(td, tt.ns, tt.sa)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", id)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.String() != tt.wantID {
				t.Errorf("id = %s, want %s", id, tt.wantID)
			}
			ns, sa, err := identity.Parse(id)
			if err != nil || ns != tt.ns || sa != tt.sa {
				t.Errorf("Parse = %q, %q, %v", ns, sa, err)
			}
			if p := identity.Principal(id); p != tt.wantPrincipal {
				t.Errorf("Principal = %q, want %q", p, tt.wantPrincipal)
			}
			back, err := identity.ParsePrincipal(tt.wantPrincipal)
			if err != nil || back != id {
				t.Errorf("ParsePrincipal = %v, %v", back, err)
			}
		})
	}
	if _, err := identity.ForServiceAccount(spiffeid.TrustDomain{}, "a", "b"); err == nil {
		t.Error("zero trust domain accepted")
	}
}

func TestParseRefusesNonWorkloadIDs(t *testing.T) {
	for _, s := range []string{"spiffe://cluster.local", "spiffe://cluster.local/ns/a", "spiffe://cluster.local/ns/a/sa/b/c", "spiffe://cluster.local/x/a/sa/b", "spiffe://cluster.local/ns/a/xx/b"} {
		t.Run(s, func(t *testing.T) {
			id := spiffeid.RequireFromString(s)
			if _, _, err := identity.Parse(id); !errors.Is(err, identity.ErrNotWorkloadID) {
				t.Errorf("err = %v, want ErrNotWorkloadID", err)
			}
		})
	}
}

func newCA(t *testing.T) *ca.Authority {
	t.Helper()
	a, err := ca.Init(t.TempDir(), ca.Options{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func issue(t *testing.T, a *ca.Authority, ns, sa string) []*x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	id, _ := identity.ForServiceAccount(td, ns, sa)
	chain, err := a.Sign(context.Background(), ca.Request{CSR: csr, ID: id, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

func TestBundlePEMRoundTripAndVerify(t *testing.T) {
	a, b := newCA(t), newCA(t)
	two, err := identity.NewBundle(td, append(a.Bundle().Roots(), b.Bundle().Roots()...)...)
	if err != nil {
		t.Fatal(err)
	}
	back, err := identity.ParseBundlePEM(td, two.MarshalPEM())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(two) || back.Len() != 2 {
		t.Fatalf("round trip changed the bundle: %d roots", back.Len())
	}
	chainA, chainB := issue(t, a, "default", "sleep"), issue(t, b, "prod", "api")
	tests := []struct {
		name    string
		bundle  *identity.Bundle
		chain   []*x509.Certificate
		now     time.Time
		wantID  string
		wantErr bool
	}{
		{name: "root A in a two-root bundle", bundle: two, chain: chainA, wantID: "spiffe://cluster.local/ns/default/sa/sleep"},
		{name: "root B in a two-root bundle", bundle: two, chain: chainB, wantID: "spiffe://cluster.local/ns/prod/sa/api"},
		{name: "leaf and intermediate only", bundle: two, chain: chainA[:2], wantID: "spiffe://cluster.local/ns/default/sa/sleep"},
		{name: "foreign root", bundle: a.Bundle(), chain: chainB, wantErr: true},
		{name: "missing intermediate", bundle: two, chain: chainA[:1], wantErr: true},
		{name: "expired", bundle: two, chain: chainA, now: time.Now().Add(2 * time.Hour), wantErr: true},
		{name: "ca certificate as leaf", bundle: two, chain: chainA[1:], wantErr: true},
		{name: "nil bundle", bundle: nil, chain: chainA, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := identity.VerifyChain(tt.bundle, tt.chain, tt.now)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("verified as %s, want an error", id)
				}
				return
			}
			if err != nil || id.String() != tt.wantID {
				t.Fatalf("VerifyChain = %s, %v; want %s", id, err, tt.wantID)
			}
			if err := identity.AuthorizeID(spiffeid.RequireFromString(tt.wantID))(id); err != nil {
				t.Error(err)
			}
			if err := identity.AuthorizeID(identity.ControlPlaneID(td))(id); err == nil {
				t.Error("AuthorizeID accepted another identity")
			}
		})
	}
}

func TestParseBundlePEMRefuses(t *testing.T) {
	a := newCA(t)
	leaf := issue(t, a, "default", "sleep")[0]
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "garbage", data: []byte("hello")},
		{name: "trailing garbage", data: append(a.Bundle().MarshalPEM(), "junk"...)},
		{name: "private key block", data: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
		{name: "leaf is not a root", data: identity.EncodeCertificatesPEM([]*x509.Certificate{leaf})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := identity.ParseBundlePEM(td, tt.data); err == nil {
				t.Fatalf("parsed a bundle of %d roots", b.Len())
			}
		})
	}
}

func TestBundleIsX509BundleSource(t *testing.T) {
	a := newCA(t)
	b := a.Bundle()
	xb, err := b.GetX509BundleForTrustDomain(td)
	if err != nil || len(xb.X509Authorities()) != 1 {
		t.Fatalf("GetX509BundleForTrustDomain = %v, %v", xb, err)
	}
	if _, err := b.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.org")); err == nil {
		t.Error("bundle answered for another trust domain")
	}
}
