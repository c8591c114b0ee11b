package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// appRig is an app on 127.0.0.1 behind a ReverseProxy that uses
// http1Transport, as an inbound port does; it counts the app's
// connections.
type appRig struct {
	app   *httptest.Server
	tr    *http1Transport
	front *httptest.Server
	conns atomic.Int64

	mu   sync.Mutex
	last net.Conn // the app's side of its newest connection
}

func newAppRig(t *testing.T, h http.Handler) *appRig {
	t.Helper()
	r := &appRig{app: httptest.NewUnstartedServer(h)}
	r.app.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
			r.mu.Lock()
			r.last = c
			r.mu.Unlock()
		}
	}
	r.app.Start()
	t.Cleanup(r.app.Close)
	in := InboundPort{Port: 8080, Protocol: ProtoHTTP, App: r.app.Listener.Addr().String()}
	r.tr = appTransport(in).(*http1Transport)
	t.Cleanup(r.tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", in.App
		},
		Transport: r.tr, BufferPool: copyBuffers, ErrorHandler: upstreamError,
	}
	r.front = httptest.NewServer(rp)
	t.Cleanup(r.front.Close)
	return r
}

func (r *appRig) do(t *testing.T, c *http.Client, method, path, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, r.front.URL+path, rd)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestHTTP1TransportKeepAliveAndBodies(t *testing.T) {
	r := newAppRig(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		switch req.URL.Path {
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			w.Write([]byte("part1,")) //nolint:errcheck
			w.(http.Flusher).Flush()
			w.Write([]byte("part2")) //nolint:errcheck
			w.Header().Set("X-Sum", "42")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("X-Method", req.Method)
			fmt.Fprintf(w, "%s %s host=%s body=%q te=%v", req.Method, req.URL.RequestURI(), req.Host, b, req.TransferEncoding)
		}
	}))
	c := r.front.Client()
	for i := range 20 {
		resp, body := r.do(t, c, http.MethodGet, fmt.Sprintf("/get?i=%d", i), "")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, fmt.Sprintf("GET /get?i=%d host=", i)) {
			t.Fatalf("GET: %d %q", resp.StatusCode, body)
		}
	}
	if n := r.conns.Load(); n != 1 {
		t.Fatalf("20 sequential requests used %d app connections, want 1", n)
	}
	if resp, body := r.do(t, c, http.MethodPost, "/post", "hello"); resp.StatusCode != 200 || !strings.Contains(body, `body="hello"`) {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	if resp, body := r.do(t, c, http.MethodHead, "/head", ""); resp.StatusCode != 200 || body != "" || resp.Header.Get("X-Method") != "HEAD" {
		t.Fatalf("HEAD: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := r.do(t, c, http.MethodGet, "/empty", ""); resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	resp, body := r.do(t, c, http.MethodGet, "/chunked", "")
	if body != "part1,part2" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("chunked: %q trailer %v", body, resp.Trailer)
	}
	if n := r.conns.Load(); n != 1 {
		t.Fatalf("app connections %d after every kind of response, want 1", n)
	}
}

func TestHTTP1TransportStaleConnection(t *testing.T) {
	var drop atomic.Bool // the next request's connection is closed unanswered
	r := newAppRig(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if drop.CompareAndSwap(true, false) {
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
		io.WriteString(w, "ok") //nolint:errcheck
	}))
	c := r.front.Client()
	closeApp := func() {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.last.Close()
		time.Sleep(20 * time.Millisecond) // the FIN reaches our side
	}

	// The app closed the pooled connection while it was idle: it is not
	// used, whatever the method.
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		r.do(t, c, m, "/", "x")
		closeApp()
		if resp, body := r.do(t, c, m, "/", "x"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s after the app closed the idle connection: %d %q", m, resp.StatusCode, body)
		}
	}

	// The app drops a request on a reused connection without answering:
	// a GET is sent again on a new connection, a POST is not (it may
	// have reached the app).
	r.do(t, c, http.MethodGet, "/", "")
	drop.Store(true)
	if resp, body := r.do(t, c, http.MethodGet, "/", ""); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET dropped on a reused connection: %d %q, want it sent again", resp.StatusCode, body)
	}
	drop.Store(true)
	if resp, _ := r.do(t, c, http.MethodPost, "/", "x"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST dropped on a reused connection: %d, want 503", resp.StatusCode)
	}
}

func TestHTTP1TransportInformational(t *testing.T) {
	r := newAppRig(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final") //nolint:errcheck
	}))
	conn, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") //nolint:errcheck
	br := bufio.NewReader(conn)
	u, _ := url.Parse(r.front.URL)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil || resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Link") == "" {
		t.Fatalf("first response %v %v, want the 103 passed on", resp, err)
	}
	for err == nil && resp.StatusCode == http.StatusEarlyHints {
		resp, err = http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "final" {
		t.Fatalf("final response %d %q", resp.StatusCode, b)
	}
}

func TestHTTP1TransportCancelAndUpgrade(t *testing.T) {
	release := make(chan struct{})
	r := newAppRig(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Upgrade") == "echo" {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "echo")
			w.WriteHeader(http.StatusSwitchingProtocols)
			c, brw, _ := http.NewResponseController(w).Hijack()
			defer c.Close()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo:" + line) //nolint:errcheck
			brw.Flush()
			return
		}
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	defer close(release)

	// A client that gives up: the app's connection is closed, not pooled.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.front.URL+"/slow", nil)
	if _, err := r.front.Client().Do(req); err == nil {
		t.Fatal("slow request did not time out")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		r.tr.mu.Lock()
		n := len(r.tr.idle)
		r.tr.mu.Unlock()
		if n == 0 && r.conns.Load() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a cancelled request: %d idle, %d app connections", n, r.conns.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// An upgrade goes through the fallback transport and works end to end.
	conn, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n") //nolint:errcheck
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(conn, "hi\n") //nolint:errcheck
	line, _ := br.ReadString('\n')
	if line != "echo:hi\n" {
		t.Fatalf("upgraded stream answered %q", line)
	}
}

func TestHTTP1TransportIdleReaped(t *testing.T) {
	r := newAppRig(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {}))
	now := time.Now()
	var mu sync.Mutex
	r.tr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r.do(t, r.front.Client(), http.MethodGet, "/", "")
	r.tr.mu.Lock()
	n := len(r.tr.idle)
	r.tr.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d idle connections after one request, want 1", n)
	}
	mu.Lock()
	now = now.Add(appIdleTimeout)
	mu.Unlock()
	r.tr.reap()
	r.tr.mu.Lock()
	n = len(r.tr.idle)
	r.tr.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d idle connections after the idle timeout, want 0", n)
	}
	r.do(t, r.front.Client(), http.MethodGet, "/", "")
	if c := r.conns.Load(); c != 2 {
		t.Fatalf("%d app connections, want a new one after the reaped one", c)
	}
}
