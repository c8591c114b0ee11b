package dashboard

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeExposed(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	tests := []struct {
		name       string
		o          AttachOptions
		wantErr    string
		wantScheme string
	}{
		{name: "loopback, plain HTTP", o: AttachOptions{Addr: "127.0.0.1:0"}, wantScheme: "http"},
		{name: "not loopback, no TLS: refused", o: AttachOptions{Addr: "0.0.0.0:0"}, wantErr: "not a loopback address"},
		{name: "TLS", o: AttachOptions{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}, wantScheme: "https"},
		{name: "a key without its certificate", o: AttachOptions{Addr: "127.0.0.1:0", KeyFile: keyFile}, wantErr: "needs its key"},
		{name: "an unreadable certificate", o: AttachOptions{Addr: "127.0.0.1:0", CertFile: keyFile, KeyFile: keyFile}, wantErr: "TLS certificate"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.o.TokenFile = filepath.Join(dir, "token-"+string(rune('a'+i)))
			url, err := serveExposed(ctx, h, tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(url, tc.wantScheme+"://") {
				t.Fatalf("url %s, want %s", url, tc.wantScheme)
			}
			tok, _ := os.ReadFile(tc.o.TokenFile)
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://"))
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test's own self-signed certificate
			for _, withToken := range []bool{false, true} {
				req, _ := http.NewRequest(http.MethodGet, tc.wantScheme+"://127.0.0.1:"+port+"/dashboard/", nil)
				if withToken {
					req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				want := http.StatusUnauthorized
				if withToken {
					want = http.StatusOK
				}
				if resp.StatusCode != want {
					t.Errorf("token %v: %d, want %d", withToken, resp.StatusCode, want)
				}
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:80": true, "[::1]:80": true, "localhost:80": true, "127.3.4.5:1": true,
		"0.0.0.0:80": false, ":80": false, "[::]:80": false, "10.0.0.1:80": false, "example.com:80": false, "garbage": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dashboard"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644) //nolint:errcheck
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)   //nolint:errcheck
	return certFile, keyFile
}
