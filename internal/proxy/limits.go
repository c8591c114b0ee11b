package proxy

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"palisade.dev/palisade/internal/telemetry"
)

// Limits bound what one downstream client can cost the sidecar or the
// gateway. A zero field takes the default, Envoy's unless said
// otherwise.
type Limits struct {
	// MaxRequestHeadersKB bounds the request line and headers of a
	// request: 60 (Envoy's max_request_headers_kb); more is 431.
	MaxRequestHeadersKB int
	// MaxRequestHeaders bounds the number of request headers: 100
	// (Envoy's max_headers_count); more is 431.
	MaxRequestHeaders int
	// RequestHeadersTimeout bounds the wait for a whole request header
	// block once its first byte came (slowloris); past it an HTTP/1.1
	// client is answered 408 and an HTTP/2 connection is closed (net/http
	// owns the stream's header compression, so no answer can be written
	// on it). 10s: Envoy has none by default; Palisade is stricter.
	RequestHeadersTimeout time.Duration
	// StreamIdleTimeout cuts a forwarded request when neither its body
	// nor its answer moved for this long, the wait for the upstream's
	// answer included: 5m (Envoy's stream_idle_timeout); 408 if no answer
	// began, else the stream is reset. It holds on the inbound, outbound
	// and gateway listeners. Upgraded streams (WebSocket) are not timed.
	StreamIdleTimeout time.Duration
	// IdleTimeout closes a downstream connection with no request in
	// flight for this long: 1h (Envoy's idle_timeout).
	IdleTimeout time.Duration
	// MaxConcurrentStreams bounds the HTTP/2 streams a downstream
	// connection may have open: 1000 (Envoy allows 2147483647; Palisade
	// is stricter). A stream over it is reset (net/http's PROTOCOL_ERROR
	// once its SETTINGS are acknowledged, REFUSED_STREAM before).
	MaxConcurrentStreams uint32
	// MaxConnections bounds the downstream connections open at once on
	// the inbound and gateway listeners; a connection over it is reset.
	// 0 is no limit, as Envoy's listeners have none by default.
	MaxConnections int
}

// withDefaults fills in the zero fields.
func (l Limits) withDefaults() Limits {
	if l.MaxRequestHeadersKB == 0 {
		l.MaxRequestHeadersKB = 60
	}
	if l.MaxRequestHeaders == 0 {
		l.MaxRequestHeaders = 100
	}
	if l.RequestHeadersTimeout == 0 {
		l.RequestHeadersTimeout = 10 * time.Second
	}
	if l.StreamIdleTimeout == 0 {
		l.StreamIdleTimeout = 5 * time.Minute
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = time.Hour
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = 1000
	}
	return l
}

// applyLimits sets the limits net/http enforces itself on srv. Its header
// limit is a backstop above the guard's and the handler's: the guard
// answers HTTP/1.1 header blocks first; an HTTP/2 header list reaches the
// handler, which measures it, answers 431 and counts, up to twice the
// limit (more than a client honouring the SETTINGS_MAX_HEADER_LIST_SIZE
// net/http announces sends); past that net/http answers 431 itself.
func (p *Proxy) applyLimits(srv *http.Server) {
	l := p.opts.Limits
	srv.MaxHeaderBytes = 2 * l.MaxRequestHeadersKB << 10
	srv.IdleTimeout = l.IdleTimeout
	// The guard times HTTP/1.1 header blocks and answers 408; this
	// backstop covers what it does not see.
	srv.ReadHeaderTimeout = 2 * l.RequestHeadersTimeout
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: int(l.MaxConcurrentStreams), CountError: p.countH2Error}
	// OPTIONS * reaches the handler, which answers 404 as Envoy does.
	srv.DisableGeneralOptionsHandler = true
}

// countH2Error counts the HTTP/2 errors of net/http's server that are a
// limit exceeded: a stream opened over MaxConcurrentStreams, which it
// resets ("stream_PROTOCOL_ERROR_over_max_streams", or REFUSED_STREAM
// while its SETTINGS are unacknowledged).
func (p *Proxy) countH2Error(errType string) {
	if strings.HasSuffix(errType, "_over_max_streams") || strings.HasSuffix(errType, "_over_max_streams_race") {
		p.tel.exceeded(telemetry.LimitConcurrentStreams)
		p.log.Info("stream refused", "reason", "too many concurrent streams", "limit", p.opts.Limits.MaxConcurrentStreams)
	}
}

// tooManyHeaders answers 431 to a request with more headers than the
// limit allows, or, over HTTP/2, a header list larger than it (HTTP/1.1
// header blocks are measured by the guard), and reports whether it did.
func (p *Proxy) tooManyHeaders(w http.ResponseWriter, r *http.Request) bool {
	n := 0
	for _, vs := range r.Header {
		n += len(vs)
	}
	if n > p.opts.Limits.MaxRequestHeaders {
		p.refuse431(w, telemetry.LimitHeaderCount, "too many request headers", "headers", n, "limit", p.opts.Limits.MaxRequestHeaders)
		return true
	}
	if r.ProtoMajor != 2 {
		return false
	}
	if size, max := h2HeaderListSize(r), p.opts.Limits.MaxRequestHeadersKB<<10; size > max {
		p.refuse431(w, telemetry.LimitHeaderSize, "request headers too large", "protocol", "HTTP/2", "bytes", size, "limit", max)
		return true
	}
	return false
}

// refuse431 counts limit, logs why with attrs and answers 431.
func (p *Proxy) refuse431(w http.ResponseWriter, limit, why string, attrs ...any) {
	p.tel.exceeded(limit)
	p.log.Info("request refused", append([]any{"reason", why}, attrs...)...)
	http.Error(w, "Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
}

// h2HeaderListSize is r's header list size as HTTP/2 counts it (RFC 9113
// 6.5.2): each field's name and value and 32 bytes, pseudo-headers
// included. A cookie split into several fields is counted as one.
func h2HeaderListSize(r *http.Request) int {
	const perField = 32
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	n := len(":method") + len(r.Method) + len(":path") + len(r.RequestURI) + len(":scheme") + len(scheme) +
		len(":authority") + len(r.Host) + 4*perField
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + perField
		}
	}
	return n
}

// admitConn counts a new downstream connection against MaxConnections;
// it returns the connection to serve (its Close gives the slot back), or
// nil when it was reset for being over the limit.
func (p *Proxy) admitConn(c net.Conn) net.Conn {
	max := p.opts.Limits.MaxConnections
	if max <= 0 {
		return c
	}
	if p.conns.Add(1) > int64(max) {
		p.conns.Add(-1)
		p.tel.exceeded(telemetry.LimitConnections)
		p.log.Info("connection refused", "reason", "too many downstream connections", "limit", max, "remote", c.RemoteAddr())
		reset(c)
		return nil
	}
	return &countedConn{Conn: c, n: &p.conns}
}

// countedConn gives its slot back once, when closed.
type countedConn struct {
	net.Conn
	n    *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}

// SetLinger lets reset send an RST through the wrapper.
func (c *countedConn) SetLinger(sec int) error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.SetLinger(sec)
	}
	return nil
}

// CloseWrite half-closes, as on the TCP connection underneath.
func (c *countedConn) CloseWrite() error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return c.Close()
}
