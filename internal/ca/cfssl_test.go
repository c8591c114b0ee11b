package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"palisade.dev/palisade/test/peers"

	"palisade.dev/palisade/internal/identity"
)

// startCFSSL runs the real `cfssl serve` on 127.0.0.1 over TLS, signing with
// the intermediate of a fresh self-signed generation, behind an HMAC auth key.
func startCFSSL(t *testing.T) (url string, authKey string, src *Authority, client *http.Client) {
	t.Helper()
	bin := peers.Binary(t, "PALISADE_CFSSL", "cfssl", "cfssl")
	dir := t.TempDir()
	src = newTestAuthority(t, newFakeClock(), KeyEC)
	gen := genDir(src.dir, 1)

	key := make([]byte, 16)
	rand.Read(key)
	authKey = hex.EncodeToString(key)
	config := fmt.Sprintf(`{
  "signing": {
    "default": {
      "expiry": "1h",
      "usages": ["signing", "key encipherment", "server auth", "client auth"],
      "auth_key": "mesh"
    }
  },
  "auth_keys": {"mesh": {"type": "standard", "key": %q}}
}`, authKey)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCert, tlsKey, pool := loopbackServerCert(t, dir)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "serve", "-address", "127.0.0.1", "-port", strconv.Itoa(port),
		"-ca", filepath.Join(gen, fileCACert), "-ca-key", filepath.Join(gen, fileCAKey),
		"-config", filepath.Join(dir, "config.json"), "-tls-cert", tlsCert, "-tls-key", tlsKey, "-loglevel", "2")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url = fmt.Sprintf("https://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(url + "/api/v1/cfssl/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cfssl serve did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return url, authKey, src, client
}

// loopbackServerCert makes a throwaway TLS certificate for 127.0.0.1.
func loopbackServerCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cfssl"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	certFile, keyFile = filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	kb, _ := EncodeKeyPEM(key)
	os.WriteFile(keyFile, kb, 0o600)
	return certFile, keyFile, pool
}

func TestCFSSLSignerAgainstRealServer(t *testing.T) {
	url, authKey, src, client := startCFSSL(t)
	gen := genDir(src.dir, 1)
	m, err := loadCACertsFiles(gen)
	if err != nil {
		t.Fatal(err)
	}
	id := mustID(t, "default", "sleep")

	tests := []struct {
		name    string
		authKey string
		uris    []string
		wantErr bool
	}{
		{name: "authsign, csr asks for the same identity", authKey: authKey, uris: []string{id.String()}},
		{name: "authsign, csr asks for another identity", authKey: authKey, uris: []string{"spiffe://cluster.local/ns/istio-system/sa/admin"}},
		{name: "wrong auth key is refused", authKey: "00112233445566778899aabbccddeeff", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewCFSSLSigner(CFSSLOptions{URL: url, AuthKey: tt.authKey, Chain: m.intermediates, Bundle: src.Bundle(), HTTPClient: client})
			if err != nil {
				t.Fatal(err)
			}
			_, csr := newCSR(t, tt.uris, "evil.example.com")
			chain, err := s.Sign(context.Background(), Request{CSR: csr, ID: id})
			if tt.wantErr {
				if err == nil {
					t.Fatal("Sign succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 3 || !chain[2].Equal(src.Bundle().Roots()[0]) {
				t.Fatalf("chain of %d, root last expected", len(chain))
			}
			leaf := chain[0]
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() || len(leaf.DNSNames) != 0 {
				t.Errorf("SANs = %v %v, want only %s", leaf.URIs, leaf.DNSNames, id)
			}
			checkWithOpenSSL(t, s.Bundle(), chain, id.String())
			if got, err := identity.VerifyChain(s.Bundle(), chain, time.Now()); err != nil || got != id {
				t.Errorf("VerifyChain = %v, %v", got, err)
			}
		})
	}
}
