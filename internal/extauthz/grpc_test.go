package extauthz

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// authServer is an in-process ext_authz gRPC server on 127.0.0.1: it records
// what it receives and answers with respond (or OK), after delay.
type authServer struct {
	authv3.UnimplementedAuthorizationServer
	addr    string
	calls   atomic.Int64
	delay   atomic.Int64 // nanoseconds
	mu      sync.Mutex
	last    *authv3.CheckRequest
	lastMD  metadata.MD
	respond func(*authv3.CheckRequest) *authv3.CheckResponse
}

func startAuthServer(t testing.TB, respond func(*authv3.CheckRequest) *authv3.CheckResponse) *authServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &authServer{addr: ln.Addr().String(), respond: respond}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, s)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return s
}

func (s *authServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.last, s.lastMD = req, md
	s.mu.Unlock()
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.respond != nil {
		return s.respond(req), nil
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{}}, nil
}

func (s *authServer) lastRequest() (*authv3.CheckRequest, metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.lastMD
}

type grpcOpts struct {
	timeout       time.Duration
	failOpen      bool
	statusOnError string
	body          *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody
}

func grpcProvider(addr string, o grpcOpts) Provider {
	g := &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
		Service:                   "ext-authz.foo.svc.cluster.local",
		Port:                      9000,
		FailOpen:                  o.failOpen,
		StatusOnError:             o.statusOnError,
		IncludeRequestBodyInCheck: o.body,
	}
	if o.timeout > 0 {
		g.Timeout = durationpb.New(o.timeout)
	}
	return Provider{Name: "ext-authz-grpc", Address: addr, Spec: &meshv1alpha1.MeshConfig_ExtensionProvider{
		Name:     "ext-authz-grpc",
		Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: g},
	}}
}

func newTestClient(t testing.TB, p Provider, opts ...Option) *Client {
	t.Helper()
	c, err := New(p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestGRPCCheckRequestAsEnvoyBuildsIt(t *testing.T) {
	s := startAuthServer(t, nil)
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	c := newTestClient(t, grpcProvider(s.addr, grpcOpts{}), WithClock(func() time.Time { return at }))

	in := &CheckInput{
		SourceAddress:        netip.MustParseAddrPort("10.1.2.3:51234"),
		DestinationAddress:   netip.MustParseAddrPort("[::ffff:127.0.0.1]:9000"),
		SourcePrincipal:      "spiffe://cluster.local/ns/workshop/sa/frontend-sa",
		DestinationPrincipal: "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa",
		Method:               "GET",
		Path:                 "/products/1?verbose=true",
		Host:                 "productcatalog:5000",
		Scheme:               "https",
		Protocol:             "HTTP/2",
		Headers: http.Header{
			"Authorization":             {"Bearer abc"},
			"X-Multi":                   {"a", "b"},
			"X-Envoy-Auth-Partial-Body": {"spoofed"},
		},
		Size:              0,
		ContextExtensions: map[string]string{"virtual_host": "frontend"},
	}
	res, err := c.Check(context.Background(), in)
	if err != nil || !res.Allowed {
		t.Fatalf("Check = %+v, %v; want allowed", res, err)
	}
	req, md := s.lastRequest()
	a := req.GetAttributes()
	sa := a.GetSource().GetAddress().GetSocketAddress()
	da := a.GetDestination().GetAddress().GetSocketAddress()
	hr := a.GetRequest().GetHttp()
	checks := []struct {
		name      string
		got, want any
	}{
		{"source address", sa.GetAddress(), "10.1.2.3"},
		{"source port", sa.GetPortValue(), uint32(51234)},
		{"destination address (unmapped)", da.GetAddress(), "127.0.0.1"},
		{"destination port", da.GetPortValue(), uint32(9000)},
		{"source principal", a.GetSource().GetPrincipal(), in.SourcePrincipal},
		{"destination principal", a.GetDestination().GetPrincipal(), in.DestinationPrincipal},
		{"request time", a.GetRequest().GetTime().AsTime(), at},
		{"method", hr.GetMethod(), "GET"},
		{"path with query", hr.GetPath(), "/products/1?verbose=true"},
		{"host", hr.GetHost(), "productcatalog:5000"},
		{"scheme", hr.GetScheme(), "https"},
		{"protocol", hr.GetProtocol(), "HTTP/2"},
		{":authority", hr.GetHeaders()[":authority"], "productcatalog:5000"},
		{":method", hr.GetHeaders()[":method"], "GET"},
		{":path", hr.GetHeaders()[":path"], "/products/1?verbose=true"},
		{":scheme", hr.GetHeaders()[":scheme"], "https"},
		{"authorization", hr.GetHeaders()["authorization"], "Bearer abc"},
		{"repeated header joined", hr.GetHeaders()["x-multi"], "a,b"},
		{"client partial-body header dropped", hr.GetHeaders()[partialBodyHeader], ""},
		{"no body", hr.GetBody() + string(hr.GetRawBody()), ""},
		{"context extensions", a.GetContextExtensions()["virtual_host"], "frontend"},
		{"grpc authority as Istio sets it", strings.Join(md.Get(":authority"), ","), "outbound_.9000_._.ext-authz.foo.svc.cluster.local"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if hr.GetId() == "" {
		t.Error("request id is empty")
	}
	for k := range hr.GetHeaders() {
		if k != strings.ToLower(k) {
			t.Errorf("header %q is not lower-case", k)
		}
	}
}

func TestGRPCAnswers(t *testing.T) {
	hv := func(k, v string, appendFlag *bool, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		o := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: action}
		if appendFlag != nil {
			o.Append = wrapperspb.Bool(*appendFlag) //lint:ignore SA1019 testing the deprecated flag authorizers still send
		}
		return o
	}
	yes, no := true, false
	tests := []struct {
		name string
		resp *authv3.CheckResponse
		want Result
	}{
		{
			name: "ok with mutations",
			resp: &authv3.CheckResponse{
				Status: &rpcstatus.Status{Code: int32(codes.OK)},
				HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
					Headers: []*corev3.HeaderValueOption{
						hv("x-user", "alice", &no, 0),
						hv("x-trace", "t2", &yes, 0),
						hv("x-default", "d", nil, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
						hv("x-if-absent", "v", nil, corev3.HeaderValueOption_ADD_IF_ABSENT),
					},
					HeadersToRemove:         []string{"authorization"},
					ResponseHeadersToAdd:    []*corev3.HeaderValueOption{hv("x-seen", "1", &yes, 0)},
					QueryParametersToSet:    []*corev3.QueryParameter{{Key: "tenant", Value: "a"}},
					QueryParametersToRemove: []string{"debug"},
				}},
			},
			want: Result{
				Allowed: true, Reason: ReasonAllowed,
				UpstreamHeaders: []HeaderMutation{
					{"x-user", "alice", HeaderSet}, {"x-trace", "t2", HeaderAppend},
					{"x-default", "d", HeaderSet}, {"x-if-absent", "v", HeaderAddIfAbsent},
				},
				UpstreamHeadersToRemove: []string{"authorization"},
				ResponseHeaders:         []HeaderMutation{{"x-seen", "1", HeaderAdd}},
				QueryParamsToSet:        []QueryParam{{"tenant", "a"}},
				QueryParamsToRemove:     []string{"debug"},
			},
		},
		{
			name: "denied without a response is 403",
			resp: &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}},
			want: Result{Status: 403, Reason: ReasonDenied},
		},
		{
			name: "denied with status, body and headers",
			resp: &authv3.CheckResponse{
				Status: &rpcstatus.Status{Code: int32(codes.Unauthenticated)},
				HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
					Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
					Body:    "login first",
					Headers: []*corev3.HeaderValueOption{hv("www-authenticate", "Bearer", &no, 0)},
				}},
			},
			want: Result{Status: 401, Body: []byte("login first"), Reason: ReasonDenied,
				Headers: http.Header{"Www-Authenticate": {"Bearer"}}},
		},
		{
			name: "error response follows statusOnError",
			resp: &authv3.CheckResponse{
				Status:       &rpcstatus.Status{Code: int32(codes.Unavailable)},
				HttpResponse: &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{}},
			},
			want: Result{Status: 503, Reason: ReasonFailClosed},
		},
		{
			name: "error response with its own reply",
			resp: &authv3.CheckResponse{
				Status: &rpcstatus.Status{Code: int32(codes.Internal)},
				HttpResponse: &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{
					Status: &typev3.HttpStatus{Code: typev3.StatusCode_BadGateway},
					Body:   "policy engine down",
				}},
			},
			want: Result{Status: 502, Body: []byte("policy engine down"), Reason: ReasonFailClosed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startAuthServer(t, func(*authv3.CheckRequest) *authv3.CheckResponse { return tt.resp })
			c := newTestClient(t, grpcProvider(s.addr, grpcOpts{statusOnError: "503"}))
			got, err := c.Check(context.Background(), &CheckInput{Method: "GET", Path: "/", Host: "h"})
			if err != nil {
				t.Fatal(err)
			}
			got.Err = nil
			assertResult(t, got, &tt.want)
		})
	}
}

func TestResultApply(t *testing.T) {
	res := &Result{
		Allowed: true,
		UpstreamHeaders: []HeaderMutation{
			{"x-user", "alice", HeaderSet}, {"x-trace", "t2", HeaderAppend}, {"x-new", "n", HeaderAppend},
			{"x-if-absent", "v", HeaderAddIfAbsent}, {"x-present", "new", HeaderAddIfAbsent},
			{"x-overwrite", "o", HeaderOverwriteIfExists}, {"x-present", "over", HeaderOverwriteIfExists},
			{"x-add", "2", HeaderAdd}, {":path", "/evil", HeaderSet}, {"host", "evil", HeaderSet},
		},
		UpstreamHeadersToRemove: []string{"Authorization"},
		QueryParamsToSet:        []QueryParam{{"tenant", "a"}},
		QueryParamsToRemove:     []string{"debug"},
		ResponseHeaders:         []HeaderMutation{{"x-seen", "1", HeaderAdd}},
	}
	h := http.Header{
		"X-User": {"mallory"}, "X-Trace": {"t1"}, "X-Present": {"old"},
		"X-Add": {"1"}, "Authorization": {"Bearer x"},
	}
	u := &url.URL{Path: "/p", RawQuery: "debug=1&keep=yes"}
	res.ApplyRequest(h, u)
	want := http.Header{
		"X-User": {"alice"}, "X-Trace": {"t1,t2"}, "X-New": {"n"}, "X-If-Absent": {"v"},
		"X-Present": {"over"}, "X-Add": {"1", "2"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("request headers = %v, want %v", h, want)
	}
	if u.RawQuery != "keep=yes&tenant=a" {
		t.Errorf("query = %q, want keep=yes&tenant=a", u.RawQuery)
	}
	rh := http.Header{"X-Seen": {"0"}}
	res.ApplyResponse(rh)
	if got := rh.Values("X-Seen"); !reflect.DeepEqual(got, []string{"0", "1"}) {
		t.Errorf("response X-Seen = %v, want [0 1]", got)
	}
}

// assertResult compares every field but Err.
func assertResult(t *testing.T, got, want *Result) {
	t.Helper()
	g, w := *got, *want
	g.Err, w.Err = nil, nil
	if len(g.Body) == 0 && len(w.Body) == 0 {
		g.Body, w.Body = nil, nil
	}
	if len(g.Headers) == 0 && len(w.Headers) == 0 {
		g.Headers, w.Headers = nil, nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("Result =\n  %+v\nwant\n  %+v", g, w)
	}
}
