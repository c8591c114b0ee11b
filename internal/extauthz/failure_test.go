package extauthz

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"palisade.dev/palisade/test/peers"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

var simpleInput = &CheckInput{Method: "GET", Path: "/", Host: "frontend:9000", Scheme: "http", Protocol: "HTTP/1.1"}

func TestGRPCAuthorizerDown(t *testing.T) {
	tests := []struct {
		name string
		opts grpcOpts
		want Result
	}{
		{"fail closed with Envoy's default 403", grpcOpts{}, Result{Status: 403, Reason: ReasonFailClosed}},
		{"fail closed with statusOnError", grpcOpts{statusOnError: "503"}, Result{Status: 503, Reason: ReasonFailClosed}},
		{"fail open", grpcOpts{failOpen: true, statusOnError: "503"}, Result{Allowed: true, Reason: ReasonFailOpen}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := peers.FreeAddr(t) // nothing listens here
			c := newTestClient(t, grpcProvider(addr, tt.opts))
			got, err := c.Check(context.Background(), simpleInput)
			if err != nil {
				t.Fatal(err)
			}
			if status.Code(errors.Unwrap(got.Err)) != codes.Unavailable {
				t.Errorf("Err = %v, want Unavailable", got.Err)
			}
			assertResult(t, got, &tt.want)

			// The authorizer comes up on the same address: the same client
			// reaches it (after gRPC's reconnect backoff).
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Skipf("address %s taken meanwhile: %v", addr, err)
			}
			g := grpc.NewServer()
			authv3.RegisterAuthorizationServer(g, &authServer{})
			go func() { _ = g.Serve(ln) }()
			defer g.Stop()
			waitAllowed(t, c)
		})
	}
}

// waitAllowed checks until the authorizer allows, for at most 10s.
func waitAllowed(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := c.Check(context.Background(), simpleInput)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed && res.Err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not recover: %+v", res)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGRPCAuthorizerSlow(t *testing.T) {
	tests := []struct {
		name string
		opts grpcOpts
		want Result
	}{
		{"timeout fails closed", grpcOpts{timeout: 100 * time.Millisecond, statusOnError: "504"}, Result{Status: 504, Reason: ReasonFailClosed}},
		{"timeout fails open", grpcOpts{timeout: 100 * time.Millisecond, failOpen: true}, Result{Allowed: true, Reason: ReasonFailOpen}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startAuthServer(t, nil)
			c := newTestClient(t, grpcProvider(s.addr, tt.opts))
			s.delay.Store(int64(5 * time.Second))
			got, err := c.Check(context.Background(), simpleInput)
			if err != nil {
				t.Fatal(err)
			}
			if status.Code(errors.Unwrap(got.Err)) != codes.DeadlineExceeded {
				t.Errorf("Err = %v, want DeadlineExceeded", got.Err)
			}
			assertResult(t, got, &tt.want)

			// Once the authorizer answers in time, the same client works.
			s.delay.Store(0)
			res, err := c.Check(context.Background(), simpleInput)
			if err != nil || !res.Allowed || res.Err != nil {
				t.Fatalf("after recovery: %+v, %v", res, err)
			}
		})
	}
}

func TestCheckCallerGone(t *testing.T) {
	s := startAuthServer(t, nil)
	s.delay.Store(int64(5 * time.Second))
	c := newTestClient(t, grpcProvider(s.addr, grpcOpts{failOpen: true}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for s.calls.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	res, err := c.Check(ctx, simpleInput)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Check = %+v, %v; want context.Canceled, not a fail-open decision", res, err)
	}
}

func TestRequestBody(t *testing.T) {
	body := func(max uint32, partial, asBytes bool) *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody {
		return &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody{
			MaxRequestBytes: max, AllowPartialMessage: partial, PackAsBytes: asBytes,
		}
	}
	tests := []struct {
		name        string
		opts        grpcOpts
		body        []byte
		wantCalled  bool
		wantStatus  int
		wantBody    string
		wantRaw     []byte
		wantPartial string
	}{
		{name: "not asked for", opts: grpcOpts{}, body: []byte("id=1"), wantCalled: true},
		{name: "as string", opts: grpcOpts{body: body(16, false, false)}, body: []byte("id=1&name=tea"),
			wantCalled: true, wantBody: "id=1&name=tea", wantPartial: "false"},
		{name: "invalid UTF-8 sanitized", opts: grpcOpts{body: body(16, false, false)}, body: []byte{'a', 0xff, 'b'},
			wantCalled: true, wantBody: "a!b", wantPartial: "false"},
		{name: "packAsBytes keeps raw bytes", opts: grpcOpts{body: body(16, false, true)}, body: []byte{'a', 0xff, 'b'},
			wantCalled: true, wantRaw: []byte{'a', 0xff, 'b'}, wantPartial: "false"},
		{name: "partial message cut at maxRequestBytes", opts: grpcOpts{body: body(4, true, false)}, body: []byte("id=1&name=tea"),
			wantCalled: true, wantBody: "id=1", wantPartial: "true"},
		{name: "too large is 413 without asking, even fail open", opts: grpcOpts{body: body(4, false, false), failOpen: true},
			body: []byte("id=1&name=tea"), wantStatus: 413},
		{name: "no body sends no partial header", opts: grpcOpts{body: body(4, false, false)}, body: nil, wantCalled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startAuthServer(t, nil)
			c := newTestClient(t, grpcProvider(s.addr, tt.opts))
			in := *simpleInput
			in.Method, in.Body, in.Size = "POST", tt.body, int64(len(tt.body))
			res, err := c.Check(context.Background(), &in)
			if err != nil {
				t.Fatal(err)
			}
			if called := s.calls.Load() > 0; called != tt.wantCalled {
				t.Fatalf("authorizer called = %v, want %v", called, tt.wantCalled)
			}
			if !tt.wantCalled {
				if res.Allowed || res.Status != tt.wantStatus {
					t.Fatalf("Result = %+v, want denied %d", res, tt.wantStatus)
				}
				return
			}
			req, _ := s.lastRequest()
			hr := req.GetAttributes().GetRequest().GetHttp()
			if hr.GetBody() != tt.wantBody || string(hr.GetRawBody()) != string(tt.wantRaw) {
				t.Errorf("body = %q raw = %q, want %q raw %q", hr.GetBody(), hr.GetRawBody(), tt.wantBody, tt.wantRaw)
			}
			if got := hr.GetHeaders()[partialBodyHeader]; got != tt.wantPartial {
				t.Errorf("%s = %q, want %q", partialBodyHeader, got, tt.wantPartial)
			}
			if hr.GetSize() != int64(len(tt.body)) {
				t.Errorf("size = %d, want %d", hr.GetSize(), len(tt.body))
			}
		})
	}
}
