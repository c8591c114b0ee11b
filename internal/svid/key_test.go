package svid

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/test/peers"
)

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		name, in string
		want     KeyType
		wantErr  bool
	}{
		{name: "default", in: "", want: KeyECP256},
		{name: "ec", in: "ec-p256", want: KeyECP256},
		{name: "rsa 2048", in: "rsa-2048", want: KeyRSA2048},
		{name: "rsa 4096", in: "rsa-4096", want: KeyRSA4096},
		{name: "the CA's spelling is not the proxy's", in: "rsa2048", wantErr: true},
		{name: "small rsa", in: "rsa-1024", wantErr: true},
		{name: "other curve", in: "ec-p384", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyType(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseKeyType(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// The agent makes the key it is told to, locally, and the CA signs an RSA
// key as it signs an ECDSA one: digitalSignature and keyEncipherment,
// serverAuth and clientAuth, a chain openssl verifies.
func TestAgentKeyTypes(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	tests := []struct {
		name    string
		kt      KeyType
		wantAlg string // openssl x509 -text
		wantPub func(any) bool
	}{
		{name: "default", kt: "", wantAlg: "Public-Key: (256 bit)", wantPub: func(k any) bool { _, ok := k.(*ecdsa.PublicKey); return ok }},
		{name: "rsa-2048", kt: KeyRSA2048, wantAlg: "Public-Key: (2048 bit)", wantPub: func(k any) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 2048 }},
		{name: "rsa-4096", kt: KeyRSA4096, wantAlg: "Public-Key: (4096 bit)", wantPub: func(k any) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 4096 }},
	}
	if _, err := NewAgent(Config{CAAddress: c.addr, CARoots: c.ca.Bundle(), KeyType: "dsa"}); err == nil || !strings.Contains(err.Error(), `key type "dsa"`) {
		t.Errorf("NewAgent with key type dsa: %v", err)
	}
	openssl := peers.Command(t, "openssl")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c.agentConfig(t, "default", "sleep-"+tt.name, &logBuffer{})
			cfg.KeyType = tt.kt
			a := runAgent(t, cfg)
			waitReady(t, a)
			chain := a.Chain()
			leaf := chain[0]
			if !tt.wantPub(leaf.PublicKey) {
				t.Fatalf("leaf key is %T", leaf.PublicKey)
			}
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; leaf.KeyUsage != want {
				t.Errorf("key usage = %b, want digitalSignature|keyEncipherment", leaf.KeyUsage)
			}
			text := verifyWithOpenSSL(t, openssl, c.ca.Bundle(), chain)
			for _, want := range []string{tt.wantAlg, "Digital Signature, Key Encipherment", "TLS Web Server Authentication, TLS Web Client Authentication", "CA:FALSE"} {
				if !strings.Contains(text, want) {
					t.Errorf("openssl x509 -text lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

// An RSA workload and an ECDSA one talk mTLS to each other.
func TestMTLSBetweenRSAAndECDSAAgents(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	cfg := c.agentConfig(t, "default", "sleep", &logBuffer{})
	cfg.KeyType = KeyRSA2048
	client := runAgent(t, cfg)
	server := runAgent(t, c.agentConfig(t, "default", "httpbin", &logBuffer{}))
	if got := mtlsPeer(t, clock, client, server); got != "cluster.local/ns/default/sa/sleep" {
		t.Errorf("server saw peer %q", got)
	}
}

// verifyWithOpenSSL runs openssl verify on chain (leaf, intermediates,
// root) against bundle and returns openssl x509 -text of the leaf.
func verifyWithOpenSSL(t *testing.T, openssl string, bundle *identity.Bundle, chain []*x509.Certificate) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := write("root.pem", bundle.MarshalPEM())
	untrusted := write("chain.pem", identity.EncodeCertificatesPEM(chain[1:]))
	leaf := write("leaf.pem", identity.EncodeCertificatesPEM(chain[:1]))
	out, err := exec.Command(openssl, "verify", "-CAfile", root, "-untrusted", untrusted, "-purpose", "sslserver", leaf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "leaf.pem: OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	out, err = exec.Command(openssl, "verify", "-CAfile", root, "-untrusted", untrusted, "-purpose", "sslclient", leaf).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify -purpose sslclient: %v\n%s", err, out)
	}
	text, err := exec.Command(openssl, "x509", "-in", leaf, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, text)
	}
	return string(text)
}
