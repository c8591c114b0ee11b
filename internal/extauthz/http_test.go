package extauthz

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"palisade.dev/palisade/test/peers"

	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

type httpOpts = meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider

func httpProvider(addr string, o *httpOpts) Provider {
	if o == nil {
		o = &httpOpts{}
	}
	o.Service, o.Port = "ext-authz.foo.svc.cluster.local", 8000
	return Provider{Name: "ext-authz-http", Address: addr, Spec: &meshv1alpha1.MeshConfig_ExtensionProvider{
		Name:     "ext-authz-http",
		Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: o},
	}}
}

func productInput(headers http.Header) *CheckInput {
	h := http.Header{"User-Agent": {"curl/8.5.0"}, "Authorization": {"Bearer t0k3n"}}
	for k, v := range headers {
		h[k] = v
	}
	return &CheckInput{
		Method: "GET", Path: "/products?id=1", Host: "productpage:9080",
		Scheme: "http", Protocol: "HTTP/1.1", Headers: h,
	}
}

// TestHTTPWithAuthorizer runs examples/authorizer as a process and checks
// the provider fields against it.
func TestHTTPWithAuthorizer(t *testing.T) {
	addr := startAuthorizer(t)
	allow := http.Header{"X-Ext-Authz": {"allow"}}
	const denyBody = "denied by ext_authz for not found header `x-ext-authz: allow` in the request"
	tests := []struct {
		name string
		opts *httpOpts
		in   *CheckInput
		want Result
	}{
		{
			name: "allowed: headers upstream and downstream, path prefixed",
			opts: &httpOpts{
				PathPrefix:                   "/check",
				IncludeRequestHeadersInCheck: []string{"x-ext-*"},
				HeadersToUpstreamOnAllow:     []string{"x-ext-authz-check-result"},
				HeadersToDownstreamOnAllow:   []string{"*-check-received"},
			},
			in: productInput(allow),
			want: Result{
				Allowed: true, Reason: ReasonAllowed,
				UpstreamHeaders: []HeaderMutation{{"X-Ext-Authz-Check-Result", "allowed", HeaderSet}},
				ResponseHeaders: []HeaderMutation{{"X-Ext-Authz-Check-Received", "GET productpage:9080/check/products?id=1 body=0", HeaderAdd}},
			},
		},
		{
			name: "request header not included is not sent: denied",
			opts: &httpOpts{HeadersToDownstreamOnDeny: []string{"x-ext-authz-check-result"}},
			in:   productInput(allow),
			want: Result{Status: 403, Body: []byte(denyBody), Reason: ReasonDenied,
				Headers: http.Header{"X-Ext-Authz-Check-Result": {"denied"}}},
		},
		{
			name: "denied: every header but Host goes downstream when the list is unset",
			opts: &httpOpts{},
			in:   productInput(nil),
			want: Result{Status: 403, Body: []byte(denyBody), Reason: ReasonDenied,
				Headers: http.Header{
					"X-Ext-Authz-Check-Result":   {"denied"},
					"X-Ext-Authz-Check-Received": {"GET productpage:9080/products?id=1 body=0"},
					"Content-Type":               {"text/plain; charset=utf-8"},
				}},
		},
		{
			name: "includeAdditionalHeadersInCheck overrides the client's header",
			opts: &httpOpts{
				IncludeRequestHeadersInCheck:    []string{"X-Ext-Authz"},
				IncludeAdditionalHeadersInCheck: map[string]string{"x-ext-authz": "allow"},
			},
			in:   productInput(http.Header{"X-Ext-Authz": {"deny"}}),
			want: Result{Allowed: true, Reason: ReasonAllowed},
		},
		{
			name: "5xx is an error: statusOnError",
			opts: &httpOpts{IncludeRequestHeadersInCheck: []string{"x-ext-authz"}, StatusOnError: "503"},
			in:   productInput(http.Header{"X-Ext-Authz": {"error"}}),
			want: Result{Status: 503, Reason: ReasonFailClosed},
		},
		{
			name: "5xx is an error: failOpen",
			opts: &httpOpts{IncludeRequestHeadersInCheck: []string{"x-ext-authz"}, FailOpen: true},
			in:   productInput(http.Header{"X-Ext-Authz": {"error"}}),
			want: Result{Allowed: true, Reason: ReasonFailOpen},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, httpProvider(addr, tt.opts))
			got, err := c.Check(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Headers != nil {
				got.Headers.Del("Date")
			}
			assertResult(t, got, &tt.want)
		})
	}
}

// TestHTTPRequestAsEnvoySendsIt records the authorization request: method,
// path, Host, the headers Envoy always sends, and nothing else unless asked.
func TestHTTPRequestAsEnvoySendsIt(t *testing.T) {
	var (
		mu   sync.Mutex
		got  *http.Request
		body []byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, body = r, b
		mu.Unlock()
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	c := newTestClient(t, httpProvider(addr, &httpOpts{
		PathPrefix:                      "/authz",
		IncludeRequestHeadersInCheck:    []string{"x-tenant"},
		IncludeAdditionalHeadersInCheck: map[string]string{"x-from": "palisade"},
		IncludeRequestBodyInCheck: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody{
			MaxRequestBytes: 64, PackAsBytes: true, // packAsBytes has no effect on HTTP
		},
	}))
	in := productInput(http.Header{"X-Tenant": {"a", "b"}, "X-Other": {"secret"}, "Cookie": {"s=1"}})
	in.Method, in.Body = "POST", []byte("id=7&name=tea")
	res, err := c.Check(context.Background(), in)
	if err != nil || !res.Allowed {
		t.Fatalf("Check = %+v, %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	checks := []struct {
		name      string
		got, want any
	}{
		{"method", got.Method, "POST"},
		{"request URI", got.RequestURI, "/authz/products?id=1"},
		{"host", got.Host, "productpage:9080"},
		{"authorization", got.Header.Get("Authorization"), "Bearer t0k3n"},
		{"included header, values joined", got.Header.Get("X-Tenant"), "a,b"},
		{"additional header", got.Header.Get("X-From"), "palisade"},
		{"other header not sent", got.Header.Get("X-Other"), ""},
		{"cookie not sent", got.Header.Get("Cookie"), ""},
		{"user-agent not sent", got.Header.Get("User-Agent"), ""},
		{"body", string(body), "id=7&name=tea"},
		{"content-length", got.ContentLength, int64(len("id=7&name=tea"))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestHTTPAuthorizerSlowOrDown(t *testing.T) {
	slow := startAuthorizer(t, "-delay", "5s")
	tests := []struct {
		name string
		addr string
		opts *httpOpts
		want Result
	}{
		{"slow: timeout fails closed", slow, &httpOpts{Timeout: durationpb.New(150 * time.Millisecond), StatusOnError: "504"},
			Result{Status: 504, Reason: ReasonFailClosed}},
		{"slow: timeout fails open", slow, &httpOpts{Timeout: durationpb.New(150 * time.Millisecond), FailOpen: true},
			Result{Allowed: true, Reason: ReasonFailOpen}},
		{"down: fails closed with 403", peers.FreeAddr(t), &httpOpts{}, Result{Status: 403, Reason: ReasonFailClosed}},
		{"down: fails open", peers.FreeAddr(t), &httpOpts{FailOpen: true}, Result{Allowed: true, Reason: ReasonFailOpen}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, httpProvider(tt.addr, tt.opts))
			got, err := c.Check(context.Background(), productInput(nil))
			if err != nil {
				t.Fatal(err)
			}
			if got.Err == nil {
				t.Error("Err is nil on an authorizer failure")
			}
			assertResult(t, got, &tt.want)
		})
	}
}

// TestHTTPClientRecovers: the authorizer comes up on the address a client
// already failed against, and the same client uses it.
func TestHTTPClientRecovers(t *testing.T) {
	addr := peers.FreeAddr(t)
	c := newTestClient(t, httpProvider(addr, &httpOpts{IncludeRequestHeadersInCheck: []string{"x-ext-authz"}}))
	in := productInput(http.Header{"X-Ext-Authz": {"allow"}})
	res, err := c.Check(context.Background(), in)
	if err != nil || res.Allowed || res.Err == nil {
		t.Fatalf("with no authorizer: %+v, %v; want an error decision", res, err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Skip("address taken meanwhile")
	}
	cmd := exec.Command(authorizerBinary(t), "-addr", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err = c.Check(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed && res.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not recover: %+v", res)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And decisions are not cached: the same client now gets a deny.
	res, err = c.Check(context.Background(), productInput(nil))
	if err != nil || res.Allowed || res.Status != 403 {
		t.Fatalf("after recovery, no header: %+v, %v; want 403", res, err)
	}
}

func TestHeaderMatcher(t *testing.T) {
	m := newHeaderMatcher([]string{"X-Exact", "x-pre*", "*-suf"})
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"exact", "x-exact", true},
		{"exact any case", "X-EXACT", true},
		{"exact is not prefix", "x-exactly", false},
		{"prefix", "x-prefix", true},
		{"prefix alone", "x-pre", true},
		{"suffix", "X-Token-Suf", true},
		{"no match", "authorization", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.matches(tt.in); got != tt.want {
				t.Errorf("matches(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if !reflect.DeepEqual(newHeaderMatcher(nil), headerMatcher{}) || (headerMatcher{}).matches("x") {
		t.Error("an empty matcher must match nothing")
	}
}

// TestHTTPOverTLS: WithTLS reaches an authorizer that serves HTTPS.
func TestHTTPOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Over", "tls")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	c := newTestClient(t, httpProvider(addr, &httpOpts{HeadersToUpstreamOnAllow: []string{"x-over"}}),
		WithTLS(srv.Client().Transport.(*http.Transport).TLSClientConfig))
	res, err := c.Check(context.Background(), productInput(nil))
	if err != nil || !res.Allowed || len(res.UpstreamHeaders) != 1 || res.UpstreamHeaders[0].Value != "tls" {
		t.Fatalf("Check = %+v, %v", res, err)
	}
	// Without TLS the same authorizer cannot be reached: fail closed.
	plain := newTestClient(t, httpProvider(addr, nil))
	if res, err := plain.Check(context.Background(), productInput(nil)); err != nil || res.Allowed {
		t.Fatalf("plaintext Check = %+v, %v; want a denial", res, err)
	}
}
