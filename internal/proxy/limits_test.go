package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
)

// limitedSidecar is the productcatalog sidecar with limits, in front of
// a recording app, with its refusal counters.
type limitedSidecar struct {
	addr string
	app  *recordingApp
	reg  *prometheus.Registry
}

func newLimitedSidecar(t *testing.T, limits proxy.Limits) *limitedSidecar {
	t.Helper()
	m := newTestMesh(t)
	reg := prometheus.NewRegistry()
	lim, err := telemetry.NewLimits(reg)
	if err != nil {
		t.Fatal(err)
	}
	a := newRecordingApp(t)
	cert := m.ca.issue(t, catalogID)
	p := m.sidecarWith("productcatalog", "productcatalog-sa", cert, cert, proxy.Options{
		Inbound: []proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: a.addr}},
		Limits:  limits,
	}, &proxy.Telemetry{Limits: lim})
	return &limitedSidecar{addr: p.Options().Inbound[0].Listen, app: a, reg: reg}
}

// exceeded reads palisade_downstream_limit_exceeded_total for limit.
func (s *limitedSidecar) exceeded(t *testing.T, limit string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "palisade_downstream_limit_exceeded_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == limit {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series for limit %s", limit)
	return 0
}

func TestLimits(t *testing.T) {
	s := newLimitedSidecar(t, proxy.Limits{MaxRequestHeadersKB: 4, MaxRequestHeaders: 10, RequestHeadersTimeout: 300 * time.Millisecond})
	many := ""
	for i := range 11 {
		many += fmt.Sprintf("X-H%d: v\r\n", i)
	}
	tests := []struct {
		name  string
		send  func() int
		want  int
		limit string
	}{
		{name: "headers under both limits", send: func() int { return sendH1(t, s.addr, h1get("/a", "X-A: "+strings.Repeat("a", 3000)+"\r\n")) }, want: 200},
		{name: "headers over the size limit", send: func() int { return sendH1(t, s.addr, h1get("/a", "X-A: "+strings.Repeat("a", 5000)+"\r\n")) },
			want: 431, limit: telemetry.LimitHeaderSize},
		{name: "headers over the count limit", send: func() int { return sendH1(t, s.addr, h1get("/a", many)) }, want: 431, limit: telemetry.LimitHeaderCount},
		{name: "HTTP/2 headers over the count limit", send: func() int {
			var extra []string
			for i := range 11 {
				extra = append(extra, fmt.Sprintf("x-h%d", i), "v")
			}
			return sendH2(t, s.addr, h2get("/a", extra...))
		}, want: 431, limit: telemetry.LimitHeaderCount},
		{name: "smuggling framing", send: func() int {
			return sendH1(t, s.addr, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		}, want: 400, limit: telemetry.LimitFraming},
		{name: "slow header block", send: func() int { return slowHeaders(t, s.addr) }, want: 408, limit: telemetry.LimitHeaderTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := 0.0
			if tc.limit != "" {
				before = s.exceeded(t, tc.limit)
			}
			if got := tc.send(); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if tc.limit != "" {
				if got := s.exceeded(t, tc.limit) - before; got != 1 {
					t.Errorf("%s counted %v times, want 1", tc.limit, got)
				}
			}
		})
	}
}

// slowHeaders sends a request line and one header, then waits: the
// answer must come from the header timeout, not the client.
func slowHeaders(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return refused
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestKeepAliveAfterBodies checks that the guard follows bodies: every
// request of a keep-alive connection (Content-Length, chunked with
// extensions and trailers, none) is answered, none refused.
func TestKeepAliveAfterBodies(t *testing.T) {
	s := newLimitedSidecar(t, proxy.Limits{})
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	reqs := []string{
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nGE",
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\n\r\n\r\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	br := bufio.NewReader(c)
	for _, r := range reqs {
		if _, err := io.WriteString(c, r); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %q: %v", r, err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("after %q: status %d", r, resp.StatusCode)
		}
	}
	if got := s.app.take(); strings.Join(got, " ") != "/a /b /c" {
		t.Errorf("app received %q, want /a /b /c", got)
	}
}

func TestMaxConnections(t *testing.T) {
	s := newLimitedSidecar(t, proxy.Limits{MaxConnections: 2})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A request answered: the connection is accepted and counted.
		if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection under the limit: %v %v", resp, err)
		}
		resp.Body.Close()
		held = append(held, c)
	}
	if code := sendH1(t, s.addr, h1get("/a")); code != refused {
		t.Fatalf("a third connection got %d, want it reset", code)
	}
	if got := s.exceeded(t, telemetry.LimitConnections); got != 1 {
		t.Errorf("connections counted %v times, want 1", got)
	}
	held[0].Close()
	eventually(t, "a slot given back serves a new connection", func() error {
		if code := sendH1(t, s.addr, h1get("/a")); code != 200 {
			return errors.New("still refused")
		}
		return nil
	})
}

// TestStreamIdleTimeout: an app silent past the stream idle timeout gets
// its request cut with Envoy's 408 "stream timeout"; one that keeps
// answering, however long in all, does not.
func TestStreamIdleTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		case "/drip":
			for range 12 {
				io.WriteString(w, ".") //nolint:errcheck
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })

	m := newTestMesh(t)
	reg := prometheus.NewRegistry()
	lim, err := telemetry.NewLimits(reg)
	if err != nil {
		t.Fatal(err)
	}
	cert := m.ca.issue(t, catalogID)
	p := m.sidecarWith("productcatalog", "productcatalog-sa", cert, cert, proxy.Options{
		Inbound: []proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: ln.Addr().String()}},
		Limits:  proxy.Limits{StreamIdleTimeout: 500 * time.Millisecond},
	}, &proxy.Telemetry{Limits: lim})
	s := &limitedSidecar{addr: p.Options().Inbound[0].Listen, reg: reg}
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := c.Get("http://" + s.addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t0 := time.Now()
	if code, body := get("/silent"); code != http.StatusRequestTimeout || body != "stream timeout" {
		t.Errorf("silent app: %d %q, want 408 stream timeout", code, body)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("the silent request took %v, want it cut at about 500ms", d)
	}
	if got := s.exceeded(t, telemetry.LimitStreamIdle); got != 1 {
		t.Errorf("stream_idle_timeout counted %v times, want 1", got)
	}
	if code, body := get("/drip"); code != 200 || body != strings.Repeat(".", 12) {
		t.Errorf("an app answering a byte every 100ms for 1.2s: %d %q, want 200 and every byte", code, body)
	}
	if got := s.exceeded(t, telemetry.LimitStreamIdle); got != 1 {
		t.Errorf("stream_idle_timeout counted %v times after the dripping answer, want still 1", got)
	}
}
