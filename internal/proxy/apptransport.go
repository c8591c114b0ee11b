package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// appIdleTimeout closes a connection to the app idle this long, as
// http.Transport's IdleConnTimeout did.
const appIdleTimeout = 90 * time.Second

// maxIdleAppConns bounds the idle connections kept to one app port.
const maxIdleAppConns = 256

// http1Transport sends HTTP/1.1 requests to one app address on pooled
// keep-alive connections, in the calling goroutine: the request is
// written and the response head read by RoundTrip itself, the body by
// whoever reads it, with no reader and writer goroutines per connection
// and no hand-offs between them as in http.Transport. An idle connection
// holds no buffers: they are borrowed while a request is in flight.
// What it does not do itself (protocol upgrades, Expect: 100-continue)
// goes to fallback, an http.Transport.
type http1Transport struct {
	addr     string
	dialer   *net.Dialer
	fallback http.RoundTripper
	now      func() time.Time

	mu    sync.Mutex
	idle  []idleConn // most recently used last
	timer *time.Timer
}

type idleConn struct {
	c     net.Conn
	since time.Time
}

var (
	appReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	appWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func newHTTP1Transport(addr string, d *net.Dialer, fallback http.RoundTripper) *http1Transport {
	return &http1Transport{addr: addr, dialer: d, fallback: fallback, now: time.Now}
}

// RoundTrip implements http.RoundTripper.
func (t *http1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" || req.Method == http.MethodConnect {
		return t.fallback.RoundTrip(req)
	}
	// A request that can be sent again is retried once on a new
	// connection when a reused one turns out closed by the app before
	// any answer, as http.Transport does.
	replayable := (req.Body == nil || req.Body == http.NoBody) && isIdempotent(req.Method)
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(req.Context())
		if err != nil {
			return nil, err
		}
		resp, answered, err := t.exchange(c, req)
		if err == nil {
			return resp, nil
		}
		if !reused || answered || !replayable || attempt > 0 {
			return nil, err
		}
	}
}

func isIdempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// exchange writes req on c and reads the response head; answered reports
// whether the app sent anything back, after which a retry is unsafe.
func (t *http1Transport) exchange(c net.Conn, req *http.Request) (resp *http.Response, answered bool, err error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	br := appReaders.Get().(*bufio.Reader)
	br.Reset(c)
	bw := appWriters.Get().(*bufio.Writer)
	bw.Reset(c)
	fail := func(err error) (*http.Response, bool, error) {
		// answered is the named result: false until the app's first byte.
		stop()
		c.Close()
		br.Reset(nil)
		appReaders.Put(br)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, answered, fmt.Errorf("proxy: app %s: %w", t.addr, err)
	}
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	appWriters.Put(bw)
	if err != nil {
		return fail(err)
	}
	if _, err := br.Peek(1); err != nil {
		return fail(err)
	}
	answered = true
	for {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx: passed on as http.Transport passes them to ReverseProxy.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Not asked for (upgrades go to the fallback): not an answer
		// this request can take.
		return fail(errors.New("unrequested 101 Switching Protocols"))
	}
	resp.Body = &appBody{t: t, c: c, br: br, body: resp.Body, stop: stop, reuse: !resp.Close && !req.Close}
	return resp, true, nil
}

// appBody is a response body; at its end the connection goes back to the
// pool when the exchange left it reusable.
type appBody struct {
	t     *http1Transport
	c     net.Conn
	br    *bufio.Reader
	body  io.ReadCloser
	stop  func() bool
	reuse bool
	done  bool
}

func (b *appBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *appBody) Close() error {
	b.finish(false)
	return nil
}

// finish releases the connection once: to the pool after a whole body
// from a keep-alive exchange, closed otherwise.
func (b *appBody) finish(whole bool) {
	if b.done {
		return
	}
	b.done = true
	_ = b.body.Close()
	// stop reports false when the request's context already fired and
	// poisoned the connection's deadline.
	keep := b.stop() && whole && b.reuse && b.br.Buffered() == 0
	b.br.Reset(nil)
	appReaders.Put(b.br)
	if keep {
		b.t.put(b.c)
		return
	}
	b.c.Close()
}

// get returns an idle connection, or dials a new one.
func (t *http1Transport) get(ctx context.Context) (c net.Conn, reused bool, err error) {
	now := t.now()
	t.mu.Lock()
	for len(t.idle) > 0 {
		ic := t.idle[len(t.idle)-1]
		t.idle[len(t.idle)-1] = idleConn{}
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(ic.since) >= appIdleTimeout {
			ic.c.Close()
			continue
		}
		t.mu.Unlock()
		if idleAlive(ic.c) {
			return ic.c, true, nil
		}
		ic.c.Close() // closed by the app while idle
		t.mu.Lock()
	}
	t.mu.Unlock()
	c, err = t.dialer.DialContext(ctx, "tcp", t.addr)
	return c, false, err
}

// put keeps c for the next request, closing it when the pool is full.
func (t *http1Transport) put(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle) >= maxIdleAppConns {
		c.Close()
		return
	}
	t.idle = append(t.idle, idleConn{c: c, since: t.now()})
	if t.timer == nil {
		t.timer = time.AfterFunc(appIdleTimeout, t.reap)
	}
}

// reap closes the connections idle for appIdleTimeout, oldest first.
func (t *http1Transport) reap() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for n < len(t.idle) && now.Sub(t.idle[n].since) >= appIdleTimeout {
		t.idle[n].c.Close()
		n++
	}
	t.idle = append(t.idle[:0], t.idle[n:]...)
	clear(t.idle[len(t.idle):cap(t.idle)])
	t.timer = nil
	if len(t.idle) > 0 {
		t.timer = time.AfterFunc(appIdleTimeout-now.Sub(t.idle[0].since), t.reap)
	}
}

// CloseIdleConnections closes every idle connection.
func (t *http1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, ic := range idle {
		ic.c.Close()
	}
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
