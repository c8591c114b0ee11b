package extauthz

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// checkResult asserts what the proxy relies on in any Result: a denial
// carries a status net/http can write, and applying it to a request
// never touches the headers the authorizer may not change.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	if !res.Allowed && (res.Status < 200 || res.Status > 599) {
		t.Fatalf("denial with status %d", res.Status)
	}
	h := http.Header{"Host": {"shop"}, "X-A": {"1"}}
	u := &url.URL{Path: "/p", RawQuery: "a=1"}
	res.ApplyRequest(h, u)
	res.ApplyResponse(http.Header{})
	if got := h.Get("Host"); got != "shop" {
		t.Fatalf("the authorizer changed Host to %q", got)
	}
}

// FuzzCheckResponse decodes a gRPC CheckResponse as the authorizer
// would send it and maps it as the proxy does.
func FuzzCheckResponse(f *testing.F) {
	add := func(m *authv3.CheckResponse) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	add(&authv3.CheckResponse{Status: &status.Status{Code: 0}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
		Headers:              []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-user", Value: "alice"}}},
		HeadersToRemove:      []string{"authorization"},
		QueryParametersToSet: []*corev3.QueryParameter{{Key: "a", Value: "2"}},
	}}})
	add(&authv3.CheckResponse{Status: &status.Status{Code: 7}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized}, Body: "no",
		Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "www-authenticate", Value: "Bearer"}}},
	}}})
	add(&authv3.CheckResponse{Status: &status.Status{Code: 7}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(1000)}}}})
	add(&authv3.CheckResponse{Status: &status.Status{Code: 13}, HttpResponse: &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m authv3.CheckResponse
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		res, err := fromCheckResponse(&m)
		if err != nil {
			c := &Client{cfg: &config{statusOnError: http.StatusForbidden}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			res = c.onError(err)
		}
		checkResult(t, res)
	})
}

// FuzzHTTPAuthorizerResponse reads an HTTP authorizer's raw answer and
// maps it as the proxy does.
func FuzzHTTPAuthorizerResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nX-User: alice\r\nX-Envoy-Auth-Headers-To-Remove: authorization, cookie\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nHost: evil\r\nContent-Length: 2\r\n\r\nno"))
	f.Add([]byte("HTTP/1.1 999 Odd\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	h := &httpTransport{cfg: &config{upstreamOnAllow: exactNames("x-user", "host"), downstreamOnAllow: exactNames("x-user"), downstreamDenyAll: true}}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		var res *Result
		if resp.StatusCode == http.StatusOK {
			res = h.allowed(resp.Header)
		} else {
			res = h.denied(resp, nil)
			if res.Headers.Get("Host") != "" {
				t.Fatal("a denial passed Host downstream")
			}
		}
		checkResult(t, res)
	})
}
