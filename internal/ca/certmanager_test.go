package ca

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/fake"
)

func TestReadCertificateRequestStatus(t *testing.T) {
	cond := func(typ, status, reason, msg string) any {
		return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg}
	}
	pemB64 := base64.StdEncoding.EncodeToString([]byte("leaf"))
	tests := []struct {
		name      string
		conds     []any
		cert      string
		wantDone  bool
		wantRefus string // substring of the ErrRefused error, "" for none
	}{
		{name: "new", wantDone: false},
		{name: "approved, not signed", conds: []any{cond("Approved", "True", "cert-manager.io", "")}},
		{name: "approved and ready", conds: []any{cond("Approved", "True", "cert-manager.io", ""), cond("Ready", "True", "Issued", "")}, cert: pemB64, wantDone: true},
		{name: "ready without a certificate", conds: []any{cond("Approved", "True", "", ""), cond("Ready", "True", "Issued", "")}},
		{name: "ready but not approved", conds: []any{cond("Ready", "True", "Issued", "")}, cert: pemB64},
		{name: "pending issuer", conds: []any{cond("Approved", "True", "", ""), cond("Ready", "False", "Pending", "issuer not ready")}},
		{name: "denied", conds: []any{cond("Denied", "True", "policy", "not this one")}, wantRefus: "Denied (policy): not this one"},
		{name: "failed", conds: []any{cond("Approved", "True", "", ""), cond("Ready", "False", "Failed", "bad CSR")}, wantRefus: "Failed: bad CSR"},
		{name: "invalid", conds: []any{cond("InvalidRequest", "True", "BadConfig", "no issuer")}, wantRefus: "InvalidRequest (BadConfig): no issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"conditions": tt.conds, "certificate": tt.cert}}}
			st, err := readStatus(u)
			if tt.wantRefus != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.wantRefus) {
					t.Fatalf("err = %v, want ErrRefused with %q", err, tt.wantRefus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.done() != tt.wantDone {
				t.Errorf("done = %v, want %v", st.done(), tt.wantDone)
			}
		})
	}
}

func TestCertManagerRefusesCSRForAnotherIdentity(t *testing.T) {
	id := mustID(t, "demo", "web")
	tests := []struct {
		name string
		uris []string
		dns  []string
	}{
		{name: "no URI"},
		{name: "another identity", uris: []string{"spiffe://cluster.local/ns/demo/sa/admin"}},
		{name: "two URIs", uris: []string{id.String(), "spiffe://cluster.local/ns/demo/sa/admin"}},
		{name: "extra DNS name", uris: []string{id.String()}, dns: []string{"web.demo.svc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, csr := newCSR(t, tt.uris, tt.dns...)
			if err := checkCSRIdentity(Request{CSR: csr, ID: id}); !errors.Is(err, ErrBadCSR) {
				t.Fatalf("err = %v, want ErrBadCSR", err)
			}
		})
	}
	_, csr := newCSR(t, []string{id.String()})
	if err := checkCSRIdentity(Request{CSR: csr, ID: id}); err != nil {
		t.Fatalf("the caller's own identity refused: %v", err)
	}
}

// The CSR is checked before anything is sent: a request for another
// identity never becomes a CertificateRequest.
func TestCertManagerSignCreatesNothingForABadCSR(t *testing.T) {
	client := fake.NewSimpleDynamicClient(runtime.NewScheme())
	s, err := NewCertManagerSigner(CertManagerOptions{
		TrustDomain: mustTD(t, "cluster.local"), Client: client,
		Issuer: IssuerRef{Name: "istio-ca", Kind: "Issuer", Group: "cert-manager.io"}, Namespace: "istio-system",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, csr := newCSR(t, []string{"spiffe://cluster.local/ns/demo/sa/admin"})
	if _, err := s.Sign(t.Context(), Request{CSR: csr, ID: mustID(t, "demo", "web")}); !errors.Is(err, ErrBadCSR) {
		t.Fatalf("err = %v, want ErrBadCSR", err)
	}
	if n := len(client.Actions()); n != 0 {
		t.Errorf("%d API calls for a refused CSR", n)
	}
}

func TestNewCertManagerSignerOptions(t *testing.T) {
	td := mustTD(t, "cluster.local")
	client := fake.NewSimpleDynamicClient(runtime.NewScheme())
	ref := IssuerRef{Name: "istio-ca", Kind: "Issuer", Group: "cert-manager.io"}
	tests := []struct {
		name string
		opts CertManagerOptions
	}{
		{name: "no client", opts: CertManagerOptions{TrustDomain: td, Issuer: ref, Namespace: "istio-system"}},
		{name: "no issuer kind", opts: CertManagerOptions{TrustDomain: td, Client: client, Issuer: IssuerRef{Name: "x", Group: "cert-manager.io"}, Namespace: "istio-system"}},
		{name: "no namespace", opts: CertManagerOptions{TrustDomain: td, Client: client, Issuer: ref}},
		{name: "no trust domain", opts: CertManagerOptions{Client: client, Issuer: ref, Namespace: "istio-system"}},
		{name: "default over max", opts: CertManagerOptions{TrustDomain: td, Client: client, Issuer: ref, Namespace: "istio-system", DefaultTTL: 2 * 3600e9, MaxTTL: 3600e9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewCertManagerSigner(tt.opts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
