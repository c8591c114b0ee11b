package ca

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/test/peers"
)

// makeIstioCACerts runs testdata/istio-cacerts.sh: a cacerts directory made
// with the openssl CLI as Istio's tools/certs Makefile.selfsigned.mk makes
// it (RSA root, RSA intermediate, cert-chain.pem = intermediate + root).
func makeIstioCACerts(t *testing.T, format, bits string) string {
	t.Helper()
	peers.Command(t, "openssl")
	dir := filepath.Join(t.TempDir(), "cluster1")
	script, err := filepath.Abs(filepath.Join("testdata", "istio-cacerts.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", script, dir, format, bits).CombinedOutput(); err != nil {
		t.Fatalf("istio-cacerts.sh: %v\n%s", err, out)
	}
	return dir
}

// A plug-in CA made by openssl, not by Palisade, loads and signs ECDSA and
// RSA workload keys; each chain verifies with openssl against the
// directory's own root-cert.pem.
func TestLoadCACertsMadeByIstioTooling(t *testing.T) {
	openssl := peers.Command(t, "openssl")
	tests := []struct {
		name, format, bits string
		wantKeyPEM         string
	}{
		{name: "pkcs1 rsa 2048 intermediate", format: "pkcs1", bits: "2048", wantKeyPEM: "-----BEGIN RSA PRIVATE KEY-----"},
		{name: "pkcs8 rsa 4096 intermediate", format: "pkcs8", bits: "4096", wantKeyPEM: "-----BEGIN PRIVATE KEY-----"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := makeIstioCACerts(t, tt.format, tt.bits)
			if key := mustReadFile(t, filepath.Join(dir, fileCAKey)); !strings.HasPrefix(string(key), tt.wantKeyPEM) {
				t.Fatalf("ca-key.pem starts %q, want %q", strings.SplitN(string(key), "\n", 2)[0], tt.wantKeyPEM)
			}
			a, err := LoadCACerts(dir, Options{TrustDomain: td})
			if err != nil {
				t.Fatal(err)
			}
			roots, err := identity.ParseCertificatesPEM(mustReadFile(t, filepath.Join(dir, fileRootCert)))
			if err != nil {
				t.Fatal(err)
			}
			if b := a.Bundle().Roots(); len(b) != 1 || !b[0].Equal(roots[0]) {
				t.Fatalf("bundle = %d roots, want root-cert.pem's", len(b))
			}
			inter, err := identity.ParseCertificatesPEM(mustReadFile(t, filepath.Join(dir, fileCACert)))
			if err != nil {
				t.Fatal(err)
			}
			for _, kt := range []KeyType{KeyEC, KeyRSA2048} {
				key, err := GenerateKey(kt)
				if err != nil {
					t.Fatal(err)
				}
				id := mustID(t, "bookinfo", "reviews")
				chain, err := a.Sign(context.Background(), Request{CSR: newCSRFor(t, key), ID: id})
				if err != nil {
					t.Fatal(err)
				}
				if len(chain) != 3 || !chain[1].Equal(inter[0]) || !chain[2].Equal(roots[0]) {
					t.Fatalf("%s workload key: chain of %d, want leaf, ca-cert.pem, root-cert.pem", kt, len(chain))
				}
				checkWithOpenSSL(t, a.Bundle(), chain, id.String())
				// And against the operator's own files, as Istio's docs
				// check a workload: openssl verify -CAfile root-cert.pem.
				leaf := filepath.Join(t.TempDir(), "leaf.pem")
				if err := os.WriteFile(leaf, identity.EncodeCertificatesPEM([]*x509.Certificate{chain[0]}), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(openssl, "verify", "-CAfile", filepath.Join(dir, fileRootCert), "-untrusted", filepath.Join(dir, fileChain), leaf).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					t.Fatalf("%s workload key: openssl verify against the directory's root-cert.pem: %v\n%s", kt, err, out)
				}
			}
		})
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
