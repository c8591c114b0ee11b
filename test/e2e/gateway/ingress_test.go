// Package gateway_test runs the workshop's ingress gateway end to end:
// `palisade up` with the real binaries, Dex as the OIDC provider, curl as
// the client (scenario sections 2 and 4).
package gateway_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

const gatewayID = "spiffe://cluster.local/ns/istio-ingress/sa/istio-ingressgateway-service-account"

// The workshop's Gateway, as a user extends it for HTTPS: a second server
// on 443 with a certificate by credentialName.
const httpsServer = `
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - "*"
    tls:
      mode: SIMPLE
      credentialName: productapp-credential
`

// An echo service behind the gateway under its own host, to see which
// headers reach a service (the workshop's frontend does not show them).
const echoService = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: echo-sa, namespace: workshop}
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata:
  name: echo
  namespace: workshop
  labels: {app: echo}
spec:
  serviceAccount: echo-sa
  ports: [{name: http, number: 8000, protocol: HTTP}]
  command: echoapp
  env: {ECHO_NAME: echo}
  readiness: {httpGet: {path: /ping}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: workshop}
spec:
  hosts: ["echo.example.com"]
  gateways: [productapp-gateway]
  http:
  - route: [{destination: {host: echo, port: {number: 8000}}}]
`

// TestIngressJWTAndTLS is the workshop behind its ingress gateway with
// the optional ingress policies filled in from a real Dex: tokens are
// checked at the edge, HTTPS is served with a private CA's certificate,
// and every hop behind the gateway is mesh mTLS.
func TestIngressJWTAndTLS(t *testing.T) {
	curl := peers.Command(t, "curl")
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/policy/echoapp")
	d := startDex(t)
	// Dex's tokens live 3 s; with the 60 s of skew Envoy allows, this one
	// is refused as expired a minute from now, at the end of the test.
	expired := d.token(t, "productapp", "charlie")

	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	optional := filepath.Join(b.Root, "examples", "workshop", "optional")
	ra, err := os.ReadFile(filepath.Join(optional, "ingress-requestauthentication-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ra = []byte(strings.NewReplacer("JWKS_URI", d.issuer+"/keys", "ISSUER", d.issuer).Replace(string(ra)))
	ap, err := os.ReadFile(filepath.Join(optional, "ingress-authorizationpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := os.ReadFile(filepath.Join(dir, "productapp-gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "ingress-requestauthentication.yaml", ra)
	write(t, dir, "ingress-authorizationpolicy.yaml", ap)
	write(t, dir, "productapp-gateway.yaml", []byte(strings.TrimRight(string(gw), "\n")+httpsServer))
	write(t, dir, "echo.yaml", []byte(echoService))
	caPEM := privateCA(t, filepath.Join(dir, "credentials", "productapp-credential"), "productapp.example.com")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	write(t, filepath.Dir(caFile), "ca.crt", caPEM)

	offset := meshtest.GatewayOffset(t)
	m := meshtest.Up(t, b, dir, "--gateway-port-offset", fmt.Sprint(offset))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", 80+offset)
	httpsPort := 443 + offset

	// A valid token for audience productapp: the product list, with curl
	// as a user would send it.
	var page string
	meshtest.Eventually(t, 30*time.Second, "GET / with alice's token", func() error {
		code, body := curlGet(t, curl, "http://"+httpAddr+"/", "-H", "Authorization: Bearer "+d.token(t, "productapp", "alice"))
		if code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		page = body
		return nil
	})
	for _, want := range []string{"Product catalog", "Table", "Chair"} {
		if !strings.Contains(page, want) {
			t.Errorf("GET / through the gateway lacks %q:\n%s", want, page)
		}
	}

	c := &http.Client{Timeout: 10 * time.Second}
	fresh := func() string { return d.token(t, "productapp", "alice") }
	cases := []struct {
		name  string
		token func() string
		code  int
		body  string
	}{
		{"no token: DENY on notRequestPrincipals", nil, 403, "RBAC: access denied"},
		{"bob", func() string { return d.token(t, "productapp", "bob") }, 200, "Product catalog"},
		{"charlie", func() string { return d.token(t, "productapp", "charlie") }, 200, "Product catalog"},
		{"tampered claims", func() string { return tamper(t, fresh()) }, 401, "Jwt verification fails"},
		{"signed by a key Dex does not have", func() string { return resign(t, fresh()) }, 401, "Jwt verification fails"},
		{"malformed", func() string { return "abc.def" }, 401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{"audience billing", func() string { return d.token(t, "billing", "alice") }, 403, "Audiences in Jwt are not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+httpAddr+"/", nil)
			if tc.token != nil {
				req.Header.Set("Authorization", "Bearer "+tc.token())
			}
			code, body := send(t, c, req)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("%d %q, want %d and %q", code, trim(body), tc.code, tc.body)
			}
		})
	}

	t.Run("forwardOriginalToken keeps the Authorization header", func(t *testing.T) {
		tok := fresh()
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/headers", nil)
		req.Host = "echo.example.com"
		req.Header.Set("Authorization", "Bearer "+tok)
		code, body := send(t, c, req)
		var echo struct {
			Headers map[string][]string `json:"headers"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &echo) != nil {
			t.Fatalf("%d %s", code, body)
		}
		if got := echo.Headers["Authorization"]; len(got) != 1 || got[0] != "Bearer "+tok {
			t.Errorf("echo saw Authorization %q, want the original token", got)
		}
		if xfcc := strings.Join(echo.Headers["X-Forwarded-Client-Cert"], ","); !strings.Contains(xfcc, "URI="+gatewayID) {
			t.Errorf("echo saw XFCC %q: the hop from the gateway is not mTLS with its identity", xfcc)
		}
	})

	t.Run("HTTPS on 443 with a private CA's certificate", func(t *testing.T) {
		url := fmt.Sprintf("https://productapp.example.com:%d/", httpsPort)
		resolve := fmt.Sprintf("productapp.example.com:%d:127.0.0.1", httpsPort)
		code, body := curlGet(t, curl, url, "--cacert", caFile, "--resolve", resolve, "-H", "Authorization: Bearer "+fresh())
		if code != 200 || !strings.Contains(body, "Table") {
			t.Fatalf("curl --cacert with a token: %d %s", code, trim(body))
		}
		if code, body := curlGet(t, curl, url, "--cacert", caFile, "--resolve", resolve); code != 403 || body != "RBAC: access denied" {
			t.Errorf("HTTPS without a token: %d %q, want 403 (the DENY names port 443)", code, body)
		}
		// Without the private CA, curl refuses the certificate.
		out, err := exec.Command(curl, "-sS", "-o", os.DevNull, "--resolve", resolve, url).CombinedOutput()
		if err == nil {
			t.Errorf("curl trusted the gateway's certificate without --cacert: %s", out)
		} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 60 {
			t.Errorf("curl without --cacert: %v %s, want exit 60 (certificate verification)", err, out)
		}
	})

	t.Run("every hop behind the gateway is mTLS", func(t *testing.T) {
		meshtest.Eventually(t, 10*time.Second, "frontend's access log", func() error {
			for _, e := range accessLog(t, filepath.Join(m.State, "logs", "workshop.frontend.proxy.log")) {
				if e["direction"] == "inbound" && e["source_principal"] == gatewayID && e["mtls"] == true && e["response_code"] == 200.0 {
					return nil
				}
			}
			return fmt.Errorf("no inbound mTLS entry from %s", gatewayID)
		})
		codes := map[float64]bool{}
		for _, e := range accessLog(t, filepath.Join(m.State, "logs", "istio-ingress.istio-ingressgateway.proxy.log")) {
			if c, ok := e["response_code"].(float64); ok {
				codes[c] = true
			}
		}
		for _, want := range []float64{200, 401, 403} {
			if !codes[want] {
				t.Errorf("gateway access log has no %v", want)
			}
		}
	})

	t.Run("palisade proxy-config jwt shows Dex's key set", func(t *testing.T) {
		out, err := m.Palisade("proxy-config", "jwt", "istio-ingress/istio-ingressgateway", "--state", m.State)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		// The rule, where its keys come from, and that they were fetched.
		for _, want := range []string{"RULE", d.issuer, d.issuer + "/keys", " ago"} {
			if !strings.Contains(out, want) {
				t.Errorf("proxy-config jwt lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("expired token", func(t *testing.T) {
		exp := time.Unix(int64(claims(t, expired)["exp"].(float64)), 0)
		time.Sleep(time.Until(exp.Add(61 * time.Second)))
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/", nil)
		req.Header.Set("Authorization", "Bearer "+expired)
		if code, body := send(t, c, req); code != 401 || body != "Jwt is expired" {
			t.Errorf("%d %q, want 401 Jwt is expired", code, body)
		}
	})
}

func write(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func send(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// curlGet runs curl and returns the status code and body.
func curlGet(t *testing.T, curl, url string, args ...string) (int, string) {
	t.Helper()
	marker := "\n--status:"
	out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "10", "-w", marker + "%{http_code}", url}, args...)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Sprintf("curl: %v: %s", err, out)
	}
	body, code, _ := strings.Cut(string(out), marker)
	var n int
	fmt.Sscan(code, &n) //nolint:errcheck
	return n, body
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// accessLog reads the JSON access log entries of a proxy's log file.
func accessLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["response_code"] != nil {
			out = append(out, e)
		}
	}
	return out
}

// privateCA makes a CA and a server certificate for host, writes the
// certificate and key as a TLS credential into dir (tls.crt, tls.key) and
// returns the CA certificate, which clients must trust.
func privateCA(t *testing.T, dir, host string) []byte {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Product App Private CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	write(t, dir, "tls.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, dir, "tls.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}
