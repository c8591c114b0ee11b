package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"palisade.dev/palisade/internal/proxy"
)

// refused is a want for a request the proxy refuses below HTTP: the
// HTTP/2 stream or the connection is reset, so no status is sent.
const refused = -1

// requestForm is one way an attacker may write a request, sent as raw
// bytes so that nothing on the client side cleans it up first. The mesh
// allows /public and /public/* only; the app behind the sidecar reports
// the target it received.
type requestForm struct {
	name string
	// h1 is the whole HTTP/1.1 request, Host given as HOST; "" when the
	// form has no HTTP/1.1 spelling.
	h1 string
	// h2 is the HTTP/2 header block (pseudo-headers first, :authority
	// given as HOST); nil when the form has no HTTP/2 spelling.
	h2 [][2]string
	// want is the status (or refused); app is the target the app must
	// receive when want is 200, and nothing may reach it otherwise.
	want   int
	want2  int // HTTP/2's status when it differs from want (0: same)
	app    string
	source string // where the form comes from: an advisory, a CVE, an RFC
}

func h2get(path string, extra ...string) [][2]string {
	h := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "HOST"}, {":path", path}}
	for i := 0; i+1 < len(extra); i += 2 {
		h = append(h, [2]string{extra[i], extra[i+1]})
	}
	return h
}

func h1get(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: HOST\r\n" + strings.Join(extra, "") + "Connection: close\r\n\r\n"
}

var requestForms = []requestForm{
	{name: "plain allowed path", h1: h1get("/public/a?q=1"), h2: h2get("/public/a?q=1"), want: 200, app: "/public/a?q=1"},
	{name: "plain denied path", h1: h1get("/admin"), h2: h2get("/admin"), want: 403},
	{name: "fragment after an allowed path", h1: h1get("/public#/../admin"), h2: h2get("/public#/../admin"), want: 400,
		source: "CVE-2021-39156, ISTIO-SECURITY-2021-008; Envoy http_reject_path_with_fragment"},
	{name: "fragment hiding a denied path", h1: h1get("/admin#/public"), h2: h2get("/admin#/public"), want: 400, source: "CVE-2021-39156"},
	{name: "encoded dot segments", h1: h1get("/public/%2e%2e/admin"), h2: h2get("/public/%2e%2e/admin"), want: 403, source: "Envoy normalize_path, CVE-2019-9901"},
	{name: "dot segments", h1: h1get("/public/../admin"), h2: h2get("/public/../admin"), want: 403, source: "CVE-2019-9901"},
	{name: "dot segments inside the allowed prefix", h1: h1get("/public/x/../y"), h2: h2get("/public/x/../y"), want: 200, app: "/public/y"},
	{name: "encoded unreserved characters", h1: h1get("/%70ublic/a"), h2: h2get("/%70ublic/a"), want: 200, app: "/public/a"},
	{name: "encoded slash then dots", h1: h1get("/public/..%2Fadmin"), h2: h2get("/public/..%2Fadmin"), want: 403,
		source: "CVE-2021-31920, ISTIO-SECURITY-2021-005 (escaped slashes)"},
	{name: "encoded backslash then dots", h1: h1get("/public/..%5Cadmin"), h2: h2get("/public/..%5Cadmin"), want: 403, source: "CVE-2021-31920"},
	{name: "backslashes", h1: h1get(`/public\..\admin`), h2: h2get(`/public\..\admin`), want: 403, source: "Envoy normalize_path (backslash is a slash)"},
	{name: "path parameter dot-dot", h1: h1get("/public/..;/admin"), h2: h2get("/public/..;/admin"), want: 403, source: "Tomcat ..;/ (CVE-2020-1938 class)"},
	{name: "path parameter before the allowed prefix", h1: h1get("/public;v=1/a"), h2: h2get("/public;v=1/a"), want: 403},
	{name: "path parameter kept", h1: h1get("/public/a;v=1"), h2: h2get("/public/a;v=1"), want: 200, app: "/public/a;v=1"},
	{name: "double slashes before dots", h1: h1get("/public//../admin"), h2: h2get("/public//../admin"), want: 200, app: "/public/admin"},
	{name: "encoded NUL", h1: h1get("/public/%00/a"), h2: h2get("/public/%00/a"), want: 400, source: "Envoy rejects %00 in every mode"},
	{name: "raw NUL", h1: h1get("/public/\x00/a"), h2: h2get("/public/\x00/a"), want: 400, want2: refused},
	{name: "control character", h1: h1get("/public/\x01a"), h2: h2get("/public/\x01a"), want: 400, want2: refused},
	{name: "invalid UTF-8 is percent-encoded", h1: h1get("/public/\xff\xfe"), h2: h2get("/public/\xff\xfe"), want: 200, app: "/public/%FF%FE"},
	{name: "absolute-form target", h1: "GET http://HOST/public/a HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n", want: 200, app: "/public/a", source: "RFC 9112 3.2.2"},
	{name: "absolute-form target to a denied path", h1: "GET http://HOST/admin HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n", want: 403},
	{name: "absolute :path", h2: h2get("http://HOST/public/a"), want: 404, source: "RFC 9113 8.3.1; Envoy downstream_rq_non_relative_path"},
	{name: "characters net/http escapes", h1: h1get("/public/a|b\"c"), h2: h2get("/public/a|b\"c"), want: 200, app: "/public/a%7Cb%22c"},
	{name: "asterisk-form OPTIONS", h1: "OPTIONS * HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n",
		h2: [][2]string{{":method", "OPTIONS"}, {":scheme", "http"}, {":authority", "HOST"}, {":path", "*"}}, want: 404, source: "Envoy downstream_rq_non_relative_path"},
	{name: "CONNECT on a route that is not CONNECT", h1: "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
		h2: [][2]string{{":method", "CONNECT"}, {":authority", "127.0.0.1:22"}}, want: 404, source: "Envoy: CONNECT matches no route without connect_matcher"},
	{name: "path over the header limit", h1: h1get("/public/" + strings.Repeat("a", 70<<10)), want: 431, source: "Envoy max_request_headers_kb (60)"},
	{name: "two Host headers", h1: "GET /public/a HTTP/1.1\r\nHost: HOST\r\nHost: evil.example\r\nConnection: close\r\n\r\n", want: 400, source: "RFC 9112 3.2"},
	{name: "host beside :authority", h2: h2get("/public/a", "host", "evil.example"), want: 200, app: "/public/a",
		source: "Envoy http2_discard_host_header: :authority wins"},
	{name: "Transfer-Encoding with Content-Length", h1: "POST /public/a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
		want: 400, source: "request smuggling, RFC 9112 6.1; Envoy allow_chunked_length false"},
	{name: "unknown Transfer-Encoding", h1: "POST /public/a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
		want: 501, source: "RFC 9112 6.1"},
	{name: "Transfer-Encoding in HTTP/2", h2: h2get("/public/a", "transfer-encoding", "chunked"), want: 400, source: "RFC 9113 8.2.2"},
	{name: "obsolete line folding", h1: "GET /public/a HTTP/1.1\r\nHost: HOST\r\nX-A: 1\r\n folded\r\nConnection: close\r\n\r\n", want: 400, source: "RFC 9112 5.2"},
	{name: "header name with a space", h1: "GET /public/a HTTP/1.1\r\nHost: HOST\r\nX A: 1\r\nConnection: close\r\n\r\n", want: 400, source: "RFC 9110 5.1"},
	{name: "space before the colon", h1: "GET /public/a HTTP/1.1\r\nHost: HOST\r\nX-A : 1\r\nConnection: close\r\n\r\n", want: 400, source: "RFC 9112 5.1"},
	{name: "upper-case HTTP/2 header name", h2: h2get("/public/a", "X-Upper", "1"), want: refused, source: "RFC 9113 8.2.1"},
}

const publicOnly = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: public-only, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - to: [{operation: {paths: ["/public", "/public/*"]}}]
`

const gatewayAll = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: workshop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all, namespace: workshop}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - route: [{destination: {host: productcatalog, port: {number: 5000}}}]
`

// recordingApp is an HTTP app that remembers the request target of
// every request it received, and by X-Request-Id.
type recordingApp struct {
	addr string
	mu   sync.Mutex
	got  []string
	byID map[string]string
}

func newRecordingApp(t testing.TB) *recordingApp {
	t.Helper()
	a := &recordingApp{byID: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.got = append(a.got, r.RequestURI)
		if id := r.Header.Get("X-Request-Id"); id != "" {
			a.byID[id] = r.RequestURI
		}
		a.mu.Unlock()
		io.WriteString(w, "ok") //nolint:errcheck
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	a.addr = ln.Addr().String()
	return a
}

// take returns what the app received since the last take.
func (a *recordingApp) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	got := a.got
	a.got = nil
	return got
}

// formMesh is the public-only mesh: the productcatalog sidecar in
// front of a recording app, and a gateway routing everything to it.
type formMesh struct {
	app      *recordingApp
	sidecar  string // the sidecar's inbound listener (plaintext, PERMISSIVE)
	gateway  string // the gateway's port 80 listener
	accesses map[string]*syncLog
}

func newFormMesh(t testing.TB) *formMesh {
	return newFormMeshWith(t, publicOnly)
}

// newFormMeshWith is the form mesh with the given policies.
func newFormMeshWith(t testing.TB, policies string) *formMesh {
	m := newTestMesh(t)
	if policies != "" {
		m.write("authz.yaml", policies)
	}
	m.write("gateway.yaml", gatewayAll)
	m.reload()
	a := newRecordingApp(t)
	sc := m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: a.addr}}, false)
	g := m.gateway("", 80)
	fm := &formMesh{app: a, sidecar: sc.Options().Inbound[0].Listen, gateway: g.addrs[80], accesses: m.logs}
	eventually(t, "the gateway reaches productcatalog", func() error {
		if code := sendH1(t, fm.gateway, h1get("/public/ready")); code != 200 {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	a.take()
	return fm
}

// sendH1 writes raw to addr and returns the response status, or
// refused when the connection is reset or ends without one.
func sendH1(t testing.TB, addr, raw string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return refused
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return refused
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return refused
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sendH2 opens an h2c connection with prior knowledge, sends one header
// block as it is (no client-side validation) and returns the response
// status, or refused on RST_STREAM or GOAWAY.
func sendH2(t testing.TB, addr string, fields [][2]string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return refused
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	if err := fr.WriteSettings(); err != nil {
		return refused
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return refused
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return refused
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				var code int
				fmt.Sscan(f.PseudoValue("status"), &code) //nolint:errcheck
				return code
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return refused
			}
		case *http2.GoAwayFrame:
			return refused
		}
	}
}

// TestRequestForms sends every form of requestForms to the sidecar and
// to the gateway, over HTTP/1.1 and HTTP/2: each gets Envoy's answer,
// and what the app receives is what authorization allowed.
func TestRequestForms(t *testing.T) {
	fm := newFormMesh(t)
	targets := []struct{ name, addr string }{{"sidecar", fm.sidecar}, {"gateway", fm.gateway}}
	for _, tgt := range targets {
		host := "productcatalog.workshop.svc.cluster.local"
		if tgt.name == "gateway" {
			host = "shop.example.com"
		}
		for _, tc := range requestForms {
			for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
				if proto == "HTTP/1.1" && tc.h1 == "" || proto == "HTTP/2" && tc.h2 == nil {
					continue
				}
				t.Run(tgt.name+"/"+proto+"/"+tc.name, func(t *testing.T) {
					fm.app.take()
					want, code := tc.want, 0
					if proto == "HTTP/1.1" {
						code = sendH1(t, tgt.addr, strings.ReplaceAll(tc.h1, "HOST", host))
					} else {
						if tc.want2 != 0 {
							want = tc.want2
						}
						fields := make([][2]string, len(tc.h2))
						for i, f := range tc.h2 {
							fields[i] = [2]string{f[0], strings.ReplaceAll(f[1], "HOST", host)}
						}
						code = sendH2(t, tgt.addr, fields)
					}
					got := fm.app.take()
					if code != want {
						t.Errorf("status %d, want %d (app received %.80q)", code, want, got)
					}
					switch {
					case want == 200 && (len(got) != 1 || got[0] != tc.app):
						t.Errorf("app received %.80q, want [%q]", got, tc.app)
					case want != 200 && len(got) != 0:
						t.Errorf("refused with %d, yet the app received %.80q", code, got)
					}
				})
			}
		}
	}
}
