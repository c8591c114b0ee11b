package extauthz

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

func TestCompile(t *testing.T) {
	grpcSpec := func(g *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider) *meshv1alpha1.MeshConfig_ExtensionProvider {
		return &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "p",
			Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: g}}
	}
	httpSpec := func(h *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider) *meshv1alpha1.MeshConfig_ExtensionProvider {
		return &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "p",
			Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: h}}
	}
	type grpcP = meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider
	type httpP = meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider
	tests := []struct {
		name    string
		p       Provider
		wantErr []string // every one must appear
		check   func(t *testing.T, c *config)
	}{
		{
			name: "gRPC defaults as Istio's",
			p:    Provider{Name: "opa", Address: "127.0.0.1:9191", Spec: grpcSpec(&grpcP{Service: "opa-ext-authz-grpc.local", Port: 9191})},
			check: func(t *testing.T, c *config) {
				if c.kind != kindGRPC || c.timeout != 600*time.Second || c.statusOnError != 403 || c.failOpen || c.body != nil {
					t.Errorf("config = %+v", c)
				}
				if c.authority != "outbound_.9191_._.opa-ext-authz-grpc.local" {
					t.Errorf("authority = %q", c.authority)
				}
			},
		},
		{
			name: "namespaced service, explicit fields",
			p: Provider{Name: "x", Address: "[::1]:9000", Spec: grpcSpec(&grpcP{Service: "foo/authz.example.com", Port: 9000,
				Timeout: durationpb.New(250 * time.Millisecond), FailOpen: true, StatusOnError: "503"})},
			check: func(t *testing.T, c *config) {
				if c.timeout != 250*time.Millisecond || c.statusOnError != 503 || !c.failOpen ||
					c.authority != "outbound_.9000_._.authz.example.com" {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "HTTP header lists",
			p: Provider{Name: "h", Address: "127.0.0.1:8000", Spec: httpSpec(&httpP{Service: "a", Port: 8000, PathPrefix: "/check",
				IncludeHeadersInCheck:     []string{"x-legacy"}, //lint:ignore SA1019 testing the deprecated field
				HeadersToDownstreamOnDeny: []string{"x-reason"}})},
			check: func(t *testing.T, c *config) {
				for _, h := range []string{"x-legacy", "authorization", ":method", ":path", ":authority"} {
					if !c.requestHeaders.matches(h) {
						t.Errorf("request header %q not sent", h)
					}
				}
				if c.requestHeaders.matches("cookie") {
					t.Error("cookie sent")
				}
				if c.downstreamDenyAll || !c.downstreamOnDeny.matches("location") || !c.downstreamOnDeny.matches("x-reason") ||
					c.downstreamOnDeny.matches("set-cookie") {
					t.Errorf("deny headers = %+v all=%v", c.downstreamOnDeny, c.downstreamDenyAll)
				}
			},
		},
		{
			name: "includeRequestHeadersInCheck wins over the deprecated field",
			p: Provider{Name: "h", Address: "127.0.0.1:8000", Spec: httpSpec(&httpP{Service: "a", Port: 8000,
				IncludeHeadersInCheck:        []string{"x-legacy"}, //lint:ignore SA1019 testing the deprecated field
				IncludeRequestHeadersInCheck: []string{"x-new"}})},
			check: func(t *testing.T, c *config) {
				if c.requestHeaders.matches("x-legacy") || !c.requestHeaders.matches("x-new") {
					t.Errorf("request headers = %+v", c.requestHeaders)
				}
			},
		},
		{
			name:    "every problem is reported",
			p:       Provider{Address: "nope", Spec: grpcSpec(&grpcP{Port: 0, StatusOnError: "abc", Timeout: durationpb.New(-time.Second)})},
			wantErr: []string{"name: must not be empty", `address "nope"`, "service: must not be empty", "port: must be in [1, 65535]", `statusOnError "abc"`, "timeout: must not be negative"},
		},
		{
			name:    "unknown status",
			p:       Provider{Name: "p", Address: "127.0.0.1:1", Spec: grpcSpec(&grpcP{Service: "a", Port: 1, StatusOnError: "299"})},
			wantErr: []string{`statusOnError "299": unsupported HTTP status`},
		},
		{
			name:    "body without maxRequestBytes",
			p:       Provider{Name: "p", Address: "127.0.0.1:1", Spec: grpcSpec(&grpcP{Service: "a", Port: 1, IncludeRequestBodyInCheck: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody{}})},
			wantErr: []string{"maxRequestBytes: must be greater than 0"},
		},
		{
			name:    "pathPrefix must begin with a slash",
			p:       Provider{Name: "p", Address: "127.0.0.1:1", Spec: httpSpec(&httpP{Service: "a", Port: 1, PathPrefix: "check"})},
			wantErr: []string{"pathPrefix: must begin with '/'"},
		},
		{
			name: "not an ext_authz provider",
			p: Provider{Name: "z", Address: "127.0.0.1:1", Spec: &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "z",
				Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin{}}},
			wantErr: []string{"not an ext_authz provider"},
		},
		{
			name:    "no spec",
			p:       Provider{Name: "p", Address: "127.0.0.1:1"},
			wantErr: []string{"spec: must be set"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := compile(tt.p)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("compile succeeded, want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if _, err := New(tt.p); err == nil || !strings.HasPrefix(err.Error(), "extauthz: new: ") {
					t.Errorf("New error = %v, want it wrapped", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestInputFromRequest(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/workshop/sa/frontend-sa")
	tests := []struct {
		name string
		req  func() *http.Request
		want CheckInput
	}{
		{
			name: "plaintext HTTP/1.1 with a body",
			req: func() *http.Request {
				r := httptest.NewRequest("POST", "http://frontend:9000/products?id=1", strings.NewReader("id=1"))
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("Authorization", "Bearer x")
				return r
			},
			want: CheckInput{
				SourceAddress: netip.MustParseAddrPort("127.0.0.1:40000"),
				Method:        "POST", Path: "/products?id=1", Host: "frontend:9000", Scheme: "http", Protocol: "HTTP/1.1",
				Headers: http.Header{"Authorization": {"Bearer x"}, "Content-Length": {"4"}}, Size: 4,
			},
		},
		{
			name: "mTLS HTTP/2: principal from the peer's URI SAN",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "https://productcatalog:5000/products/", nil)
				r.ProtoMajor, r.ProtoMinor = 2, 0
				r.RemoteAddr = "[::1]:5555"
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{spiffe}}}}
				return r
			},
			want: CheckInput{
				SourceAddress:   netip.MustParseAddrPort("[::1]:5555"),
				SourcePrincipal: spiffe.String(),
				Method:          "GET", Path: "/products/", Host: "productcatalog:5000", Scheme: "https", Protocol: "HTTP/2",
				Headers: http.Header{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InputFromRequest(tt.req())
			if got.SourceAddress != tt.want.SourceAddress || got.SourcePrincipal != tt.want.SourcePrincipal ||
				got.Method != tt.want.Method || got.Path != tt.want.Path || got.Host != tt.want.Host ||
				got.Scheme != tt.want.Scheme || got.Protocol != tt.want.Protocol || got.Size != tt.want.Size {
				t.Errorf("input = %+v\nwant    %+v", got, tt.want)
			}
			if len(got.Headers) != len(tt.want.Headers) {
				t.Errorf("headers = %v, want %v", got.Headers, tt.want.Headers)
			}
			for k, v := range tt.want.Headers {
				if got.Headers.Get(k) != v[0] {
					t.Errorf("header %s = %q, want %q", k, got.Headers.Get(k), v[0])
				}
			}
		})
	}
}
