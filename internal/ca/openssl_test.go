package ca

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/test/peers"

	"palisade.dev/palisade/internal/identity"
)

// checkWithOpenSSL runs `openssl verify` and `openssl x509 -text` on an
// issued chain (leaf, intermediates..., root) and asserts what a user would
// look for.
func checkWithOpenSSL(t *testing.T, bundle *identity.Bundle, chain []*x509.Certificate, wantURI string) {
	t.Helper()
	openssl := peers.Command(t, "openssl")
	dir := t.TempDir()
	write := func(name string, certs []*x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, identity.EncodeCertificatesPEM(certs), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, bundle.MarshalPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	untrusted := write("chain.pem", chain[1:len(chain)-1])
	leaf := write("leaf.pem", chain[:1])
	out, err := exec.Command(openssl, "verify", "-CAfile", root, "-untrusted", untrusted, leaf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "leaf.pem: OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// The whole chain as Istio returns it (root last) also verifies.
	full := write("full-chain.pem", chain)
	out, err = exec.Command(openssl, "verify", "-CAfile", root, "-untrusted", full, leaf).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify with the full chain as untrusted: %v\n%s", err, out)
	}
	text, err := exec.Command(openssl, "x509", "-in", leaf, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, text)
	}
	for _, want := range []string{
		"URI:" + wantURI,
		"CA:FALSE",
		"TLS Web Server Authentication, TLS Web Client Authentication",
		"Digital Signature, Key Encipherment",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("openssl x509 -text lacks %q:\n%s", want, text)
		}
	}
}

func TestIssuedChainsPassOpenSSL(t *testing.T) {
	tests := []struct {
		name string
		kt   KeyType
	}{
		{name: "ec", kt: KeyEC},
		{name: "rsa2048", kt: KeyRSA2048},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAuthority(t, newFakeClock(), tt.kt)
			id := mustID(t, "default", "sleep")
			_, csr := newCSR(t, []string{"spiffe://cluster.local/ns/kube-system/sa/root"})
			chain, err := a.Sign(context.Background(), Request{CSR: csr, ID: id})
			if err != nil {
				t.Fatal(err)
			}
			checkWithOpenSSL(t, a.Bundle(), chain, id.String())
		})
	}
	// Workload keys of every type the proxy makes (svid.KeyType), under
	// an ECDSA and an RSA CA: RSA leaves carry keyEncipherment too.
	for _, caKT := range []KeyType{KeyEC, KeyRSA2048} {
		a := newTestAuthority(t, newFakeClock(), caKT)
		for _, leafKT := range []KeyType{KeyRSA2048, KeyRSA4096} {
			t.Run(string(caKT)+" ca, "+string(leafKT)+" workload key", func(t *testing.T) {
				key, err := GenerateKey(leafKT)
				if err != nil {
					t.Fatal(err)
				}
				id := mustID(t, "default", "legacy")
				chain, err := a.Sign(context.Background(), Request{CSR: newCSRFor(t, key), ID: id})
				if err != nil {
					t.Fatal(err)
				}
				if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; chain[0].KeyUsage != want {
					t.Errorf("key usage = %b, want digitalSignature|keyEncipherment", chain[0].KeyUsage)
				}
				checkWithOpenSSL(t, a.Bundle(), chain, id.String())
			})
		}
	}
	t.Run("plug-in ca", func(t *testing.T) {
		src := newTestAuthority(t, newFakeClock(), KeyEC)
		a, err := LoadCACerts(genDir(src.dir, 1), Options{TrustDomain: td})
		if err != nil {
			t.Fatal(err)
		}
		id := mustID(t, "bookinfo", "reviews")
		_, csr := newCSR(t, nil)
		chain, err := a.Sign(context.Background(), Request{CSR: csr, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		checkWithOpenSSL(t, a.Bundle(), chain, id.String())
	})
}
