package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/telemetry"
)

// tlsMode is how the sidecar talks to one upstream, after
// DestinationRule and auto mTLS.
type tlsMode int

const (
	modePlain tlsMode = iota
	modeIstio
	modeOrigination // SIMPLE or MUTUAL from a DestinationRule
)

// route is where one outbound request or connection goes.
type route struct {
	u        *Upstream
	mode     tlsMode
	settings *networkingv1alpha3.ClientTLSSettings
	rule     string // namespace/name of the DestinationRule, "" for auto
}

func (p *Proxy) route(cfg *Compiled, u *Upstream) route {
	s, rule := cfg.TLSFor(u, p.opts.Self.Ref.Namespace)
	r := route{u: u, settings: s, rule: rule}
	if s == nil {
		// Auto mTLS: Istio mTLS to endpoints that run a sidecar.
		if !u.External && len(u.Endpoints) > 0 && u.Endpoints[0].Sidecar {
			r.mode = modeIstio
		}
		return r
	}
	switch s.GetMode() {
	case networkingv1alpha3.ClientTLSSettings_ISTIO_MUTUAL:
		r.mode = modeIstio
	case networkingv1alpha3.ClientTLSSettings_SIMPLE, networkingv1alpha3.ClientTLSSettings_MUTUAL:
		r.mode = modeOrigination
	default:
		r.mode = modePlain
	}
	return r
}

// upstreamPool keeps pooled HTTP transports per upstream service port and
// picks endpoints round robin.
type upstreamPool struct {
	p          *Proxy
	mu         sync.Mutex
	transports map[string]*http.Transport
	rr         atomic.Uint64
}

func newUpstreamPool(p *Proxy) *upstreamPool {
	return &upstreamPool{p: p, transports: map[string]*http.Transport{}}
}

func (up *upstreamPool) close() {
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, t := range up.transports {
		t.CloseIdleConnections()
	}
}

func (up *upstreamPool) pick(u *Upstream) (Endpoint, error) {
	if len(u.Endpoints) == 0 {
		return Endpoint{}, fmt.Errorf("proxy: no healthy upstream for %s:%d", u.Host, u.Port)
	}
	return u.Endpoints[up.rr.Add(1)%uint64(len(u.Endpoints))], nil
}

// dial opens a connection to one endpoint of rt, with the TLS the route
// asks for; alpn is offered on TLS.
func (up *upstreamPool) dial(ctx context.Context, rt route, alpn []string) (net.Conn, error) {
	ep, err := up.pick(rt.u)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", ep.Addr)
	if err != nil {
		return nil, err
	}
	var cfg *tls.Config
	switch rt.mode {
	case modePlain:
		return c, nil
	case modeIstio:
		cfg = up.p.istioClientTLS(rt.u, alpn, ep.Addr)
	case modeOrigination:
		cfg, err = originationTLS(rt.settings, rt.u, alpn)
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	tc := tls.Client(c, cfg)
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("proxy: TLS to %s (%s): %w", ep.Addr, rt.u.Service, err)
	}
	return tc, nil
}

// transport returns the pooled transport for a route. Mesh mTLS
// negotiates HTTP/2 between sidecars, so many requests share one
// connection.
func (up *upstreamPool) transport(rt route) *http.Transport {
	key := fmt.Sprintf("%s|%d|%d|%s", rt.u.Service, rt.u.Port, rt.mode, rt.rule)
	if rt.settings != nil {
		// A DestinationRule edited in place (other CA, client
		// certificate, SNI) must not reuse connections made under the
		// old settings.
		key += "|" + prototext.Format(rt.settings)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if t, ok := up.transports[key]; ok {
		return t
	}
	service, port := rt.u.Service, rt.u.Port
	current := func() (route, error) {
		cfg := up.p.store.Current()
		for _, u := range cfg.Services {
			if u.Service == service && u.Port == port {
				return up.p.route(cfg, u), nil
			}
		}
		return route{}, fmt.Errorf("proxy: service %s port %d is gone", service, port)
	}
	t := &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	if rt.mode == modePlain {
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			r, err := current()
			if err != nil {
				return nil, err
			}
			r.mode = modePlain
			return up.dial(ctx, r, nil)
		}
		if rt.u.Protocol == ProtoHTTP2 {
			protos := new(http.Protocols)
			protos.SetUnencryptedHTTP2(true)
			t.Protocols = protos
		}
	} else {
		mode := rt.mode
		t.DialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			r, err := current()
			if err != nil {
				return nil, err
			}
			r.mode = mode
			return up.dial(ctx, r, []string{"h2", "http/1.1"})
		}
	}
	up.transports[key] = t
	return t
}

// serveOutboundHTTP is the HTTP proxy the app reaches through
// HTTP_PROXY: absolute-form requests are routed by Host, CONNECT opens a
// tunnel.
func (p *Proxy) serveOutboundHTTP(ctx context.Context, ln net.Listener) error {
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) {},
		Transport: outboundRT{p},
		// As inbound: a response with a Content-Length goes out in one
		// write, a streaming one is flushed on every write.
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("outbound request failed", "host", r.Host, "err", err)
			upstreamError(w, r, err)
		},
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Protocols:         protos,
		ReadHeaderTimeout: 30 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodConnect {
				p.connect(w, r)
				return
			}
			start := time.Now()
			// Envoy's outbound listeners SANITIZE: an app cannot pass a
			// forged client certificate header to the next hop.
			r.Header.Del("X-Forwarded-Client-Cert")
			sw := &statusWriter{ResponseWriter: w}
			info := &upstreamInfo{}
			rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), upstreamInfoKey{}, info)))
			p.observe(&Record{
				Start: start, Duration: time.Since(start), Protocol: protoName(r), HTTPVersion: r.Proto, Direction: telemetry.Outbound,
				Method: r.Method, Path: r.URL.Path, Authority: r.Host, ResponseCode: sw.code(), BytesSent: sw.n,
				SourceNamespace: p.opts.Self.Ref.Namespace, SourceWorkload: p.opts.Self.Ref.Name, SourcePrincipal: p.selfID(),
				DestinationService: info.service, DestinationPrincipal: info.principal, MTLS: info.mtls, UpstreamHost: info.addr,
				UserAgent: r.UserAgent(), RequestID: r.Header.Get("X-Request-Id"),
			})
		}),
	}
	p.track(srv)
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// outboundRT sends one request to the upstream its Host names.
type outboundRT struct{ p *Proxy }

func (o outboundRT) RoundTrip(r *http.Request) (*http.Response, error) {
	cfg := o.p.store.Current()
	if cfg == nil {
		return nil, errNoConfig
	}
	host := r.URL.Host
	if host == "" {
		host = r.Host
	}
	u := cfg.Lookup(host, 80)
	if u == nil {
		if cfg.Mesh.GetOutboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
			return nil, fmt.Errorf("proxy: %s is not a known service (outboundTrafficPolicy REGISTRY_ONLY)", host)
		}
		r.URL.Scheme = "http"
		r.URL.Host = host
		return http.DefaultTransport.RoundTrip(r)
	}
	rt := o.p.route(cfg, u)
	out := r.Clone(r.Context())
	out.URL.Host = fmt.Sprintf("%s:%d", u.Host, u.Port)
	out.URL.Scheme = "http"
	if rt.mode != modePlain {
		out.URL.Scheme = "https"
	}
	out.RequestURI = ""
	resp, err := o.p.upstreams.transport(rt).RoundTrip(out)
	if info, ok := r.Context().Value(upstreamInfoKey{}).(*upstreamInfo); ok {
		info.service = u.Host
		if err == nil && resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
			info.mtls = rt.mode == modeIstio
			if uris := resp.TLS.PeerCertificates[0].URIs; len(uris) > 0 {
				info.principal = uris[0].String()
			}
		}
	}
	return resp, err
}

// errNoConfig fails outbound requests that arrive before the first
// config push.
var errNoConfig = errors.New("proxy: no configuration from the control plane yet")

// upstreamInfo carries what the round trip learned back to the access log.
type upstreamInfo struct {
	service, principal, addr string
	mtls                     bool
}

type upstreamInfoKey struct{}

// connect serves CONNECT host:port: a TCP tunnel to the upstream. gRPC
// and other clients that honour HTTP_PROXY for any protocol arrive here.
func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "CONNECT needs HTTP/1.1", http.StatusBadRequest)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		return
	}
	var app net.Conn = c
	if brw.Reader.Buffered() > 0 {
		app = &peekedConn{Conn: c, r: brw.Reader}
	}
	p.tunnel(app, r.Host)
}

func (p *Proxy) serveOutboundPort(ctx context.Context, ln net.Listener, o OutboundPort) error {
	return acceptLoop(ctx, ln, func(c net.Conn) { p.tunnel(c, o.Target) })
}

// tunnel carries an app connection to target over the route's TLS. For
// mesh mTLS it sniffs the app's first bytes to offer the right ALPN, so
// the server's sidecar can parse HTTP/2 (gRPC) and HTTP/1.1.
func (p *Proxy) tunnel(app net.Conn, target string) {
	defer app.Close()
	start := time.Now()
	cfg := p.store.Current()
	if cfg == nil { // no config pushed yet: refused, as inbound is
		reset(app)
		return
	}
	rec := &Record{Start: start, Protocol: telemetry.ProtocolTCP, Direction: telemetry.Outbound, Authority: target,
		SourceNamespace: p.opts.Self.Ref.Namespace, SourceWorkload: p.opts.Self.Ref.Name, DestinationService: target}
	defer func() { rec.Duration = time.Since(start); p.observe(rec) }()
	u := cfg.Lookup(target, 0)
	var up net.Conn
	var err error
	if u == nil {
		if cfg.Mesh.GetOutboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
			rec.ResponseFlags = "NR"
			return
		}
		up, err = net.DialTimeout("tcp", target, 5*time.Second)
	} else {
		rt := p.route(cfg, u)
		var alpn []string
		if rt.mode == modeIstio {
			br := bufio.NewReader(app)
			_ = app.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			b, _ := br.Peek(3)
			_ = app.SetReadDeadline(time.Time{})
			switch {
			case strings.HasPrefix(string(b), "PRI"):
				alpn = []string{"h2"}
			case isHTTPMethod(string(b)):
				alpn = []string{"http/1.1"}
			}
			app = &peekedConn{Conn: app, r: br, direct: true}
		}
		rec.MTLS = rt.mode == modeIstio
		up, err = p.upstreams.dial(context.Background(), rt, alpn)
	}
	if err != nil {
		rec.ResponseFlags = "UF"
		p.log.Warn("outbound connection failed", "target", target, "err", err)
		return
	}
	defer up.Close()
	rec.UpstreamHost = up.RemoteAddr().String()
	if tc, ok := up.(*tls.Conn); ok && len(tc.ConnectionState().PeerCertificates) > 0 && len(tc.ConnectionState().PeerCertificates[0].URIs) > 0 {
		rec.DestinationPrincipal = tc.ConnectionState().PeerCertificates[0].URIs[0].String()
	}
	rec.BytesSent, rec.BytesReceived = splice(app, up)
}

func isHTTPMethod(s string) bool {
	for _, m := range []string{"GET", "POS", "PUT", "HEA", "DEL", "PAT", "OPT", "TRA"} {
		if s == m {
			return true
		}
	}
	return false
}
