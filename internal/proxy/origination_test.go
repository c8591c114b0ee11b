package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/peers"
)

// extPKI is an outside CA with a server certificate for api.example.com
// and a client certificate, as PEM files.
type extPKI struct {
	dir                                          string
	ca, serverCert, serverKey, client, clientKey string
}

func newExtPKI(t *testing.T) *extPKI {
	t.Helper()
	dir := t.TempDir()
	p := &extPKI{dir: dir}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "outside CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.ca = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, cn string, dns []string, eku x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", kd)
	}
	p.serverCert, p.serverKey = leaf("server", 2, "api.example.com", []string{"api.example.com"}, x509.ExtKeyUsageServerAuth)
	p.client, p.clientKey = leaf("client", 3, "palisade-client", nil, x509.ExtKeyUsageClientAuth)
	return p
}

// sServer runs openssl s_server with -www (each connection answers
// one request with a status page) and returns its address. requireClient
// makes it demand a client certificate signed by the CA.
func sServer(t *testing.T, p *extPKI, requireClient bool) string {
	t.Helper()
	openssl := peers.Command(t, "openssl")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"s_server", "-accept", addr, "-cert", p.serverCert, "-key", p.serverKey, "-www", "-naccept", "100"}
	if requireClient {
		args = append(args, "-Verify", "1", "-CAfile", p.ca)
	}
	cmd := exec.Command(openssl, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("openssl s_server on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DestinationRule TLS origination (Istio's "Egress TLS Origination"
// task): the app speaks plain HTTP to its sidecar, which opens TLS to an
// outside server (the real openssl s_server) as the rule says.
func TestDestinationRuleTLSOrigination(t *testing.T) {
	pki := newExtPKI(t)
	simple, mutual := sServer(t, pki, false), sServer(t, pki, true)
	serviceEntry := func(name, addr string) string {
		_, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: workshop}
spec:
  hosts: [%[1]s.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %[2]s}]
  endpoints: [{address: 127.0.0.1}]
`, name, port)
	}
	rule := func(host, tls string) string {
		return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s-tls, namespace: workshop}
spec:
  host: %s.example.com
  trafficPolicy:
    tls:
%s`, host, host, tls)
	}
	indent := func(s string) string {
		return "      " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ") + "\n"
	}
	m := newTestMesh(t)
	write := func(simpleTLS, mutualTLS string) {
		m.write("pa.yaml", strictMesh+serviceEntry("simple", simple)+serviceEntry("mutual", mutual)+
			rule("simple", indent(simpleTLS))+rule("mutual", indent(mutualTLS)))
		m.reload()
	}
	sni := "sni: api.example.com\n"
	write("mode: SIMPLE\ncaCertificates: "+pki.ca+"\n"+sni,
		"mode: MUTUAL\ncaCertificates: "+pki.ca+"\n"+sni+"clientCertificate: "+pki.client+"\nprivateKey: "+pki.clientKey)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	c := proxyClient(front)
	call := func(host string) (int, string) {
		resp, err := c.Get("http://" + host + ".example.com/")
		if err != nil {
			t.Fatalf("GET %s: %v", host, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 64<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	// s_server -www answers with its session: the protocol, and the
	// client certificate when one was sent.
	eventually(t, "SIMPLE origination to s_server", func() error {
		if code, body := call("simple"); code != 200 || !strings.Contains(body, "TLSv1.3") {
			return fmt.Errorf("%d %.200q", code, body)
		}
		return nil
	})
	code, body := call("mutual")
	if code != 200 || !strings.Contains(body, "palisade-client") {
		t.Errorf("MUTUAL: %d, want 200 and s_server reporting the client certificate palisade-client: %.300q", code, body)
	}

	// Edited in place: each failure is a 503, never a connection made
	// under the old settings.
	for _, c := range []struct {
		name                 string
		simpleTLS, mutualTLS string
	}{
		{"server certificate not from the CA the rule trusts (system roots)", "mode: SIMPLE\n" + sni, "mode: SIMPLE\n" + sni},
		{"subjectAltNames the server does not have", "mode: SIMPLE\ncaCertificates: " + pki.ca + "\n" + sni + "subjectAltNames: [other.example.com]", "mode: SIMPLE\ncaCertificates: " + pki.ca + "\n" + sni},
	} {
		write(c.simpleTLS, c.mutualTLS)
		eventually(t, c.name, func() error {
			if code, body := call("simple"); code != 503 {
				return fmt.Errorf("simple: %d %.200q, want 503", code, body)
			}
			// The mutual server now gets no client certificate.
			if code, body := call("mutual"); code != 503 {
				return fmt.Errorf("mutual without a client certificate: %d %.200q, want 503", code, body)
			}
			return nil
		})
	}
}

// A DestinationRule edited in place takes effect on the next request:
// connections pooled under the old settings are not reused (here a
// keep-alive server that demands a client certificate, and the rule
// turned from MUTUAL to SIMPLE).
func TestDestinationRuleEditDoesNotReusePooledConnections(t *testing.T) {
	pki := newExtPKI(t)
	pair, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(pki.ca)
	pool.AppendCertsFromPEM(caPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client=%s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	m := newTestMesh(t)
	write := func(tlsSettings string) {
		m.write("pa.yaml", strictMesh+`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: workshop}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: `+port+`}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: workshop}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {`+tlsSettings+`}
`)
		m.reload()
	}
	write("mode: MUTUAL, caCertificates: " + pki.ca + ", clientCertificate: " + pki.client + ", privateKey: " + pki.clientKey)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	c := proxyClient(front)
	eventually(t, "MUTUAL through a keep-alive connection", func() error {
		if code, body := get(t, c, "http://api.example.com/"); code != 200 || body != "client=palisade-client" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	write("mode: SIMPLE, caCertificates: " + pki.ca)
	eventually(t, "SIMPLE after the edit: the server refuses the handshake", func() error {
		if code, body := get(t, c, "http://api.example.com/"); code != 503 {
			return fmt.Errorf("%d %q: a connection made under MUTUAL was reused", code, body)
		}
		return nil
	})
}
