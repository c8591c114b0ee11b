package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"palisade.dev/palisade/internal/identity"
)

func TestSignIssuesAuthenticatedIdentityOnly(t *testing.T) {
	clock := newFakeClock()
	a := newTestAuthority(t, clock, KeyEC)
	id := mustID(t, "default", "sleep")
	tests := []struct {
		name string
		uris []string
		dns  []string
	}{
		{name: "csr asks for the same identity", uris: []string{id.String()}},
		{name: "csr asks for nothing"},
		{name: "csr asks for another identity", uris: []string{"spiffe://cluster.local/ns/istio-system/sa/admin"}},
		{name: "csr asks for several identities and DNS names", uris: []string{"spiffe://cluster.local/ns/a/sa/b", "spiffe://evil.org/ns/x/sa/y"}, dns: []string{"admin.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, csr := newCSR(t, tt.uris, tt.dns...)
			chain, err := a.Sign(context.Background(), Request{CSR: csr, ID: id})
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 3 {
				t.Fatalf("chain has %d certificates, want leaf, intermediate, root", len(chain))
			}
			leaf := chain[0]
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
				t.Errorf("URI SANs = %v, want only %s", leaf.URIs, id)
			}
			if len(leaf.DNSNames) != 0 || len(leaf.EmailAddresses) != 0 || len(leaf.IPAddresses) != 0 {
				t.Errorf("leaf has extra SANs: %v %v %v", leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf("leaf IsCA=%v BasicConstraintsValid=%v, want CA:FALSE", leaf.IsCA, leaf.BasicConstraintsValid)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("key usage = %v", leaf.KeyUsage)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ext key usage = %v", leaf.ExtKeyUsage)
			}
			if got := leaf.NotAfter.Sub(clock.Now()); got != DefaultWorkloadTTL {
				t.Errorf("lifetime after now = %s, want %s", got, DefaultWorkloadTTL)
			}
			if !chain[2].Equal(a.Bundle().Roots()[0]) {
				t.Error("last certificate of the chain is not the root")
			}
			got, err := identity.VerifyChain(a.Bundle(), chain, clock.Now())
			if err != nil || got != id {
				t.Errorf("VerifyChain = %v, %v; want %s", got, err, id)
			}
		})
	}
}

func TestSignTTL(t *testing.T) {
	clock := newFakeClock()
	a, err := Init(t.TempDir(), Options{TrustDomain: td, Clock: clock.Now, DefaultTTL: 2 * time.Hour, MaxTTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := mustID(t, "ns1", "sa1")
	tests := []struct {
		name    string
		ttl     time.Duration
		want    time.Duration
		wantErr error
	}{
		{name: "zero takes the default", ttl: 0, want: 2 * time.Hour},
		{name: "short", ttl: 90 * time.Second, want: 90 * time.Second},
		{name: "at the max", ttl: 48 * time.Hour, want: 48 * time.Hour},
		{name: "over the max", ttl: 49 * time.Hour, wantErr: ErrTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, csr := newCSR(t, nil)
			chain, err := a.Sign(context.Background(), Request{CSR: csr, ID: id, TTL: tt.ttl})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := chain[0].NotAfter.Sub(clock.Now()); got != tt.want {
				t.Errorf("lifetime = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	a := newTestAuthority(t, newFakeClock(), KeyEC)
	_, csr := newCSR(t, nil)
	tests := []struct {
		name string
		req  Request
	}{
		{name: "no csr", req: Request{ID: mustID(t, "a", "b")}},
		{name: "foreign trust domain", req: Request{CSR: csr, ID: identityIn(t, "example.org")}},
		{name: "zero identity", req: Request{CSR: csr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if chain, err := a.Sign(context.Background(), tt.req); err == nil {
				t.Fatalf("Sign succeeded with %d certificates, want an error", len(chain))
			}
		})
	}
}

func identityIn(t *testing.T, domain string) (id spiffeIDType) {
	t.Helper()
	id, err := identity.ForServiceAccount(mustTD(t, domain), "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestKeyTypes(t *testing.T) {
	tests := []struct {
		name string
		kt   KeyType
		want string
	}{
		{name: "ec", kt: KeyEC, want: "ECDSA P-256"},
		{name: "rsa2048", kt: KeyRSA2048, want: "RSA 2048"},
		{name: "rsa4096", kt: KeyRSA4096, want: "RSA 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.kt == KeyRSA4096 && testing.Short() {
				t.Skip("RSA 4096 key generation is slow; run without -short")
			}
			a := newTestAuthority(t, newFakeClock(), tt.kt)
			st := a.Status()
			if got := st.Roots[0].KeyType; got != tt.want {
				t.Errorf("key type = %q, want %q", got, tt.want)
			}
			if got := keyTypeOf(a.Bundle().Roots()[0].PublicKey); got != tt.want {
				t.Errorf("root key type = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenReloadsState(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	a, err := Init(dir, Options{TrustDomain: td, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, Options{TrustDomain: td, Clock: clock.Now}); err == nil {
		t.Error("Init over an existing CA succeeded")
	}
	for _, name := range []string{fileRootKey, fileCAKey} {
		fi, err := os.Stat(filepath.Join(genDir(dir, 1), name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %04o, want 0600", name, fi.Mode().Perm())
		}
	}
	b, err := Open(dir, Options{TrustDomain: td, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Bundle().Equal(b.Bundle()) {
		t.Error("reopened CA has another bundle")
	}
	_, csr := newCSR(t, nil)
	chain, err := b.Sign(context.Background(), Request{CSR: csr, ID: mustID(t, "x", "y")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyChain(a.Bundle(), chain, clock.Now()); err != nil {
		t.Errorf("certificate from the reopened CA does not verify against the first bundle: %v", err)
	}
	if _, err := Open(dir, Options{TrustDomain: mustTD(t, "other.org")}); err == nil {
		t.Error("Open with another trust domain succeeded")
	}
	if _, err := Open(t.TempDir(), Options{TrustDomain: td}); err == nil {
		t.Error("Open of an empty directory succeeded")
	}
	if err := os.Chmod(filepath.Join(genDir(dir, 1), fileCAKey), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{TrustDomain: td}); err == nil {
		t.Error("Open with a world-readable key succeeded")
	}
}

func TestLoadCACerts(t *testing.T) {
	clock := newFakeClock()
	// A self-signed generation directory is an Istio cacerts layout.
	src := newTestAuthority(t, clock, KeyEC)
	other := newTestAuthority(t, clock, KeyEC)
	dir := genDir(src.dir, 1)

	// root-cert.pem holding two roots: both are trusted.
	roots := append(src.Bundle().Roots(), other.Bundle().Roots()...)
	if err := os.WriteFile(filepath.Join(dir, fileRootCert), identity.EncodeCertificatesPEM(roots), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := LoadCACerts(dir, Options{TrustDomain: td, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if a.Bundle().Len() != 2 {
		t.Errorf("bundle has %d roots, want 2", a.Bundle().Len())
	}
	_, csr := newCSR(t, nil)
	chain, err := a.Sign(context.Background(), Request{CSR: csr, ID: mustID(t, "x", "y")})
	if err != nil {
		t.Fatal(err)
	}
	if !chain[len(chain)-1].Equal(src.Bundle().Roots()[0]) {
		t.Error("chain does not end in the intermediate's root")
	}
	if _, err := a.RotateRoot(""); !errors.Is(err, ErrRotationUnsupported) {
		t.Errorf("RotateRoot on a plug-in CA: err = %v", err)
	}

	t.Run("key does not match", func(t *testing.T) {
		bad := genDir(other.dir, 1)
		key, _ := os.ReadFile(filepath.Join(dir, fileCAKey))
		if err := os.WriteFile(filepath.Join(bad, fileCAKey), key, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCACerts(bad, Options{TrustDomain: td}); err == nil {
			t.Error("LoadCACerts with a foreign key succeeded")
		}
	})
	t.Run("intermediate not under root-cert.pem", func(t *testing.T) {
		bad := t.TempDir()
		for _, f := range []string{fileCACert, fileCAKey, fileChain} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			os.WriteFile(filepath.Join(bad, f), b, 0o600)
		}
		os.WriteFile(filepath.Join(bad, fileRootCert), other.Bundle().MarshalPEM(), 0o644)
		if _, err := LoadCACerts(bad, Options{TrustDomain: td}); err == nil {
			t.Error("LoadCACerts with an unrelated root succeeded")
		}
	})
}
