package proxy_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
	"palisade.dev/palisade/internal/xds"
)

const gatewayID = "spiffe://cluster.local/ns/istio-ingress/sa/istio-ingressgateway-service-account"

// gatewayUnderTest is an ingress gateway on loopback: the Gateway server
// port each listener stands for, and where it listens.
type gatewayUnderTest struct {
	p     *proxy.Proxy
	addrs map[uint32]string
	log   *syncLog
}

func (g *gatewayUnderTest) url(port uint32, path string) string {
	return "http://" + g.addrs[port] + path
}

// gateway starts an ingress gateway proxy (istio-ingress/istio-ingressgateway,
// labels istio=ingressgateway) listening for each Gateway server port,
// with TLS credentials by name under creds.
func (m *testMesh) gateway(creds string, ports ...uint32) *gatewayUnderTest {
	m.t.Helper()
	return m.gatewayWith(creds, proxy.Limits{}, nil, ports...)
}

// gatewayWith is gateway with limits, counting refusals in lim.
func (m *testMesh) gatewayWith(creds string, limits proxy.Limits, lim *telemetry.Limits, ports ...uint32) *gatewayUnderTest {
	m.t.Helper()
	labels := map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}
	ref := config.WorkloadRef{Namespace: "istio-ingress", Name: "istio-ingressgateway", Labels: labels, Gateway: "istio-ingressgateway"}
	cc := &proxy.Compiler{Self: proxy.Self{Ref: ref, ServiceAccount: "istio-ingressgateway-service-account"}, Keys: jwt.NewKeyStore(jwt.KeyStoreOptions{})}
	store := proxy.NewStore(m.log, cc.Compile)
	opts := proxy.Options{Self: cc.Self, CredentialsDir: creds, HandshakeTimeout: 5 * time.Second, Limits: limits}
	for _, n := range ports {
		opts.Gateway = append(opts.Gateway, proxy.GatewayListener{Port: n, Listen: "127.0.0.1:0"})
	}
	cert := m.ca.issue(m.t, gatewayID)
	logs := &syncLog{}
	m.logs["istio-ingressgateway"] = logs
	p := proxy.New(opts, store, staticCerts{cert}, &proxy.Telemetry{AccessLog: telemetry.NewAccessLog(logs), Limits: lim}, m.log)
	if err := p.Listen(); err != nil {
		m.t.Fatal(err)
	}
	g := &gatewayUnderTest{p: p, addrs: map[uint32]string{}, log: logs}
	for _, l := range p.Options().Gateway {
		g.addrs[l.Port] = l.Listen
	}
	ls := map[string]any{}
	for k, v := range labels {
		ls[k] = v
	}
	meta, err := structpb.NewStruct(map[string]any{controlplane.MetaGateway: true, controlplane.MetaLabels: ls})
	if err != nil {
		m.t.Fatal(err)
	}
	conn, err := grpc.NewClient(m.cpLn.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{*cert}, RootCAs: m.roots,
		InsecureSkipVerify: true, // the test CA's server cert has no DNS SAN; the chain is checked below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: m.roots})
			return err
		},
	})))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { conn.Close() })
	xc := &xds.Client{Conn: conn, Node: &corev3.Node{Id: "istio-ingress/istio-ingressgateway", Metadata: meta}, Handler: store, Log: m.log, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	go xc.Run(m.ctx)  //nolint:errcheck
	go p.Serve(m.ctx) //nolint:errcheck
	select {
	case <-store.Ready():
	case <-time.After(10 * time.Second):
		m.t.Fatal("gateway got no config")
	}
	return g
}

// headerApp answers every request with its path and headers, one
// "Name: value" a line, so a test sees what the gateway forwarded.
func headerApp(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, k+": "+v)
			}
		}
		sort.Strings(lines)
		fmt.Fprintf(w, "path=%s\nhost=%s\n%s\n", r.URL.RequestURI(), r.Host, strings.Join(lines, "\n"))
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// frontendBehindGateway starts the frontend sidecar on port 9000 in
// front of headerApp.
func (m *testMesh) frontendBehindGateway() {
	m.t.Helper()
	m.sidecar("frontend", "frontend-sa", m.ca.issue(m.t, frontendID),
		[]proxy.InboundPort{{Port: 9000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: headerApp(m.t)}}, false)
}

// do sends one request with an optional Host header and returns status,
// body and headers.
func do(t *testing.T, c *http.Client, method, u, host string, hdr http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, u, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func noRedirects() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

const gatewayHTTP = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: workshop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop.example.com", "*.api.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other-gateway, namespace: workshop}
spec:
  selector: {istio: somethingelse}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["other.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: workshop}
spec:
  hosts: ["shop.example.com", "v1.api.example.com"]
  gateways: [shop-gateway]
  http:
  - match: [{uri: {prefix: /static/}, method: {exact: GET}}]
    rewrite: {uri: /assets/}
    route: [{destination: {host: frontend, port: {number: 9000}}}]
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - match: [{uri: {exact: /health}}]
    directResponse: {status: 200, body: {string: "ok from the edge"}}
  - match: [{headers: {x-tenant: {regex: "t[0-9]+"}}}]
    route: [{destination: {host: frontend.workshop.svc.cluster.local, port: {number: 9000}}}]
  - match: [{uri: {prefix: /}, method: {exact: GET}}]
    route: [{destination: {host: frontend}}]
`

func TestGatewayRoutesToMeshOverMTLS(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh)
	m.write("gateway.yaml", gatewayHTTP)
	m.reload()
	m.frontendBehindGateway()
	g := m.gateway("", 80)
	c := noRedirects()

	var body string
	eventually(t, "a request through the gateway reaches frontend", func() error {
		code, b, _ := do(t, c, "GET", g.url(80, "/products?x=1"), "shop.example.com", nil)
		if code != 200 {
			return fmt.Errorf("%d %s", code, b)
		}
		body = b
		return nil
	})
	// The hop behind the gateway is mesh mTLS: the sidecar saw the
	// gateway's certificate and says so in XFCC.
	for _, want := range []string{"path=/products?x=1", "host=shop.example.com", "X-Forwarded-Client-Cert: By=" + frontendID, "URI=" + gatewayID,
		"X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Request-Id: "} {
		if !strings.Contains(body, want) {
			t.Errorf("frontend's app saw\n%s\nwant %q in it", body, want)
		}
	}
	eventually(t, "frontend's access log names the gateway as mTLS peer", func() error {
		l := m.logs["frontend"].String()
		if !strings.Contains(l, `"source_principal":"`+gatewayID+`"`) || !strings.Contains(l, `"mtls":true`) {
			return fmt.Errorf("frontend access log: %s", l)
		}
		return nil
	})

	cases := []struct {
		name, method, path, host string
		hdr                      http.Header
		code                     int
		want                     string // in the body, or the Location for a redirect
	}{
		{"prefix rewrite", "GET", "/static/app.css", "shop.example.com", nil, 200, "path=/assets/app.css\n"},
		{"wildcard server host and VirtualService host", "GET", "/a", "v1.api.example.com", nil, 200, "path=/a\n"},
		{"Host with port", "GET", "/a", "shop.example.com:80", nil, 200, "path=/a\n"},
		{"redirect", "GET", "/old", "shop.example.com", nil, 302, "http://shop.example.com/new"},
		{"direct response", "GET", "/health", "shop.example.com", nil, 200, "ok from the edge"},
		{"header regex match", "POST", "/orders", "shop.example.com", http.Header{"X-Tenant": {"t42"}}, 200, "path=/orders\n"},
		{"header regex is anchored", "POST", "/orders", "shop.example.com", http.Header{"X-Tenant": {"xt42"}}, 404, ""},
		{"no route for the method", "DELETE", "/a", "shop.example.com", nil, 404, ""},
		{"host of no server on the port", "GET", "/a", "evil.example.com", nil, 404, ""},
		{"host of a Gateway selecting other gateways", "GET", "/a", "other.example.com", nil, 404, ""},
		{"server host with no VirtualService", "GET", "/a", "v2.api.example.com", nil, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, b, h := do(t, c, tc.method, g.url(80, tc.path), tc.host, tc.hdr)
			if code != tc.code {
				t.Fatalf("%s %s Host %s: %d %q, want %d", tc.method, tc.path, tc.host, code, b, tc.code)
			}
			switch {
			case code/100 == 3:
				if h.Get("Location") != tc.want {
					t.Errorf("Location %q, want %q", h.Get("Location"), tc.want)
				}
			case !strings.Contains(b, tc.want):
				t.Errorf("body %q, want %q in it", b, tc.want)
			}
		})
	}

	// A route change is pushed to the running gateway.
	m.write("gateway.yaml", strings.Replace(gatewayHTTP, "directResponse: {status: 200, body: {string: \"ok from the edge\"}}", "directResponse: {status: 503, body: {string: \"down for maintenance\"}}", 1))
	m.reload()
	eventually(t, "the new direct response", func() error {
		code, b, _ := do(t, c, "GET", g.url(80, "/health"), "shop.example.com", nil)
		if code != 503 || b != "down for maintenance" {
			return fmt.Errorf("%d %q", code, b)
		}
		return nil
	})
}

// privateCA is a CA outside the mesh, as a company's own PKI would issue
// the gateway's public certificate and its clients' certificates.
type privateCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newPrivateCA(t *testing.T, cn string) *privateCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &privateCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// issue returns a leaf for cn (also its DNS SAN) as a tls.Certificate
// and as PEM certificate and key.
func (ca *privateCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (*tls.Certificate, []byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1) + 1000), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// credential writes DIR/<name>/{tls.crt,tls.key[,ca.crt]}, the layout of
// a Kubernetes TLS secret named by credentialName.
func credential(t *testing.T, dir, name string, crt, key, ca []byte) {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"tls.crt": crt, "tls.key": key}
	if ca != nil {
		files["ca.crt"] = ca
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

const gatewayTLS = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: workshop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["shop.example.com"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 443, name: https-partner, protocol: HTTPS}
    hosts: ["partner.example.com"]
    tls: {mode: MUTUAL, credentialName: partner-cert}
  - port: {number: 9443, name: tls-passthrough, protocol: TLS}
    hosts: ["vault.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: workshop}
spec:
  hosts: ["shop.example.com", "partner.example.com"]
  gateways: [shop-gateway]
  http:
  - route: [{destination: {host: frontend, port: {number: 9000}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vault, namespace: workshop}
spec:
  hosts: ["vault.example.com"]
  gateways: [shop-gateway]
  tls:
  - match: [{port: 9443, sniHosts: ["vault.example.com"]}]
    route: [{destination: {host: vault, port: {number: 8443}}}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: vault, namespace: workshop, labels: {app: vault}}
spec:
  serviceAccount: vault-sa
  command: x
  ports: [{name: tls, number: 8443, protocol: TLS}]
`

func TestGatewayTLS(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh)
	m.write("gateway.yaml", gatewayTLS)
	m.reload()
	m.frontendBehindGateway()

	pki := newPrivateCA(t, "Example Corp Root")
	creds := t.TempDir()
	_, crt, key := pki.issue(t, "shop.example.com", x509.ExtKeyUsageServerAuth)
	credential(t, creds, "shop-cert", crt, key, nil)
	_, crt, key = pki.issue(t, "partner.example.com", x509.ExtKeyUsageServerAuth)
	clientCA := newPrivateCA(t, "Partner Clients")
	credential(t, creds, "partner-cert", crt, key, clientCA.pem)
	partner, _, _ := clientCA.issue(t, "partner-client", x509.ExtKeyUsageClientAuth)
	stranger, _, _ := newPrivateCA(t, "Someone Else").issue(t, "partner-client", x509.ExtKeyUsageClientAuth)

	// The vault service terminates TLS itself, with its own certificate
	// from the private CA; the gateway passes its TLS through by SNI.
	vaultCert, _, _ := pki.issue(t, "vault.example.com", x509.ExtKeyUsageServerAuth)
	m.sidecar("vault", "vault-sa", m.ca.issue(t, "spiffe://cluster.local/ns/workshop/sa/vault-sa"),
		[]proxy.InboundPort{{Port: 8443, Name: "tls", Protocol: proxy.ProtoTCP, Listen: "127.0.0.1:0", App: tlsApp(t, vaultCert)}}, false)

	g := m.gateway(creds, 80, 443, 9443)
	https := func(sni string, client *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: pki.pool, ServerName: sni}
		if client != nil {
			cfg.Certificates = []tls.Certificate{*client}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	}

	t.Run("SIMPLE", func(t *testing.T) {
		var resp *http.Response
		eventually(t, "HTTPS through the gateway", func() error {
			req, _ := http.NewRequest("GET", "https://"+g.addrs[443]+"/secure", nil)
			req.Host = "shop.example.com"
			var err error
			resp, err = https("shop.example.com", nil).Do(req)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 {
				resp.Body.Close()
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "shop.example.com" {
			t.Errorf("gateway served certificate %q", got)
		}
		if resp.Proto != "HTTP/2.0" {
			t.Errorf("protocol %s, want HTTP/2.0 negotiated by ALPN", resp.Proto)
		}
		for _, want := range []string{"path=/secure", "X-Forwarded-Proto: https", "URI=" + gatewayID} {
			if !strings.Contains(string(b), want) {
				t.Errorf("app saw\n%s\nwant %q in it", b, want)
			}
		}
		// A client that trusts only the mesh CA refuses the certificate.
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.roots, ServerName: "shop.example.com"}}}
		if _, err := c.Get("https://" + g.addrs[443] + "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("client trusting another CA: %v, want a certificate error", err)
		}
		// The SNI chose the SIMPLE server: its routes only, whatever the
		// Host says, so no way around MUTUAL's client certificate.
		if code, b, _ := do(t, https("shop.example.com", nil), "GET", "https://"+g.addrs[443]+"/orders", "partner.example.com", nil); code != 404 {
			t.Errorf("SNI shop.example.com, Host partner.example.com: %d %s, want 404", code, b)
		}
		// SNI of no server on the port: no handshake.
		if _, err := https("nobody.example.com", nil).Get("https://" + g.addrs[443] + "/"); err == nil {
			t.Error("an unknown SNI got an answer")
		}
	})

	t.Run("MUTUAL", func(t *testing.T) {
		eventually(t, "with a client certificate from the client CA", func() error {
			code, b, _ := do(t, https("partner.example.com", partner), "GET", "https://"+g.addrs[443]+"/orders", "partner.example.com", nil)
			if code != 200 || !strings.Contains(b, "path=/orders") {
				return fmt.Errorf("%d %s", code, b)
			}
			// XFCC SANITIZE_SET: the gateway states the client's
			// certificate to the app, then mesh mTLS adds its own entry.
			if !strings.Contains(b, "X-Forwarded-Client-Cert: ") || !strings.Contains(b, `Subject="CN=partner-client"`) {
				return fmt.Errorf("app saw no XFCC for the partner certificate:\n%s", b)
			}
			return nil
		})
		for name, cert := range map[string]*tls.Certificate{"no client certificate": nil, "a certificate of another CA": stranger} {
			_, err := https("partner.example.com", cert).Get("https://" + g.addrs[443] + "/orders")
			if err == nil {
				t.Errorf("%s: request passed", name)
			}
		}
	})

	t.Run("httpsRedirect", func(t *testing.T) {
		code, _, h := do(t, noRedirects(), "GET", g.url(80, "/cart?id=3"), "shop.example.com", nil)
		if code != http.StatusMovedPermanently || h.Get("Location") != "https://shop.example.com/cart?id=3" {
			t.Errorf("plain HTTP: %d Location %q, want 301 to https://shop.example.com/cart?id=3", code, h.Get("Location"))
		}
	})

	t.Run("PASSTHROUGH", func(t *testing.T) {
		var answer string
		var state tls.ConnectionState
		eventually(t, "TLS to the vault through the gateway", func() error {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", g.addrs[9443], &tls.Config{RootCAs: pki.pool, ServerName: "vault.example.com"})
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			state = c.ConnectionState()
			if _, err := io.WriteString(c, "hello vault\n"); err != nil {
				return err
			}
			answer, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		// End-to-end encryption: the client talked TLS with the backend
		// itself, not with the gateway.
		if got := state.PeerCertificates[0].Subject.CommonName; got != "vault.example.com" {
			t.Errorf("client saw certificate %q, want the backend's vault.example.com", got)
		}
		if answer != "vault got: hello vault\n" {
			t.Errorf("answer %q", answer)
		}
		// No TLS route for the SNI: the connection is refused.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", g.addrs[9443], &tls.Config{RootCAs: pki.pool, ServerName: "db.example.com"})
		if err == nil {
			c.Close()
			t.Error("an SNI with no TLS route was passed through")
		}
	})
}

// tlsApp is a backend that terminates TLS itself and answers each line
// with "vault got: <line>".
func tlsApp(t *testing.T, cert *tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}})
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		io.WriteString(c, "vault got: "+line) //nolint:errcheck
	})
	return ln.Addr().String()
}

// serveConns hands each connection ln accepts to handle, on its own
// goroutine, and closes it after; ln closes with the test.
func serveConns(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
