package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
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
	// pin is the one endpoint to dial, when a captured connection named
	// an endpoint's own address; "" picks round robin.
	pin string
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

// pinned is the endpoint rt is pinned to.
func (rt route) pinned() Endpoint {
	for _, ep := range rt.u.Endpoints {
		if ep.Addr == rt.pin {
			return ep
		}
	}
	return Endpoint{Addr: rt.pin}
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
	ep, err := rt.pinned(), error(nil)
	if rt.pin == "" {
		if ep, err = up.pick(rt.u); err != nil {
			return nil, err
		}
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
	key := fmt.Sprintf("%s|%d|%d|%s|%s", rt.u.Service, rt.u.Port, rt.mode, rt.rule, rt.pin)
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
	service, port, pin := rt.u.Service, rt.u.Port, rt.pin
	current := func() (route, error) {
		cfg := up.p.store.Current()
		for _, u := range cfg.Services {
			if u.Service == service && u.Port == port {
				r := up.p.route(cfg, u)
				r.pin = pin
				return r, nil
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
	srv := p.outboundServer()
	p.track(srv)
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// outboundServer serves the app's outbound HTTP: requests through
// HTTP_PROXY, and captured connections sniffed as HTTP, whose
// destination the capture already worked out (capturedConn).
func (p *Proxy) outboundServer() *http.Server {
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) {},
		Transport: outboundRT{p},
		// As inbound: a response with a Content-Length goes out in one
		// write, a streaming one is flushed on every write.
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errBlackHole) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			p.log.Warn("outbound request failed", "host", r.Host, "err", err)
			upstreamError(w, r, err)
		},
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	return &http.Server{
		Protocols:         protos,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if cc, ok := c.(*capturedConn); ok {
				return context.WithValue(ctx, capturedKey{}, &cc.dst)
			}
			return ctx
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, captured := r.Context().Value(capturedKey{}).(*capturedDst)
			if r.Method == http.MethodConnect && !captured {
				p.connect(w, r)
				return
			}
			start := time.Now()
			// Envoy's outbound listeners SANITIZE: an app cannot pass a
			// forged client certificate header to the next hop.
			r.Header.Del("X-Forwarded-Client-Cert")
			sw := &statusWriter{ResponseWriter: w}
			info := &upstreamInfo{}
			// The stream idle timeout, as inbound.
			wr, wreq, stop := p.watchStream(sw, r.WithContext(context.WithValue(r.Context(), upstreamInfoKey{}, info)))
			defer stop()
			rp.ServeHTTP(wr, wreq)
			if idledOut(wreq) {
				info.flags = "SI"
			}
			p.observe(&Record{
				Start: start, Duration: time.Since(start), Protocol: protoName(r), HTTPVersion: r.Proto, Direction: telemetry.Outbound,
				Method: r.Method, Path: r.URL.Path, Authority: r.Host, ResponseCode: sw.code(), BytesSent: sw.n,
				SourceNamespace: p.opts.Self.Ref.Namespace, SourceWorkload: p.opts.Self.Ref.Name, SourcePrincipal: p.selfID(),
				DestinationService: info.service, DestinationPrincipal: info.principal, MTLS: info.mtls, UpstreamHost: info.addr,
				UpstreamCluster: info.cluster, ResponseFlags: info.flags, UserAgent: r.UserAgent(), RequestID: r.Header.Get("X-Request-Id"),
			})
		}),
	}
}

// outboundRT sends one request to the upstream its Host names.
type outboundRT struct{ p *Proxy }

func (o outboundRT) RoundTrip(r *http.Request) (*http.Response, error) {
	cfg := o.p.store.Current()
	if cfg == nil {
		return nil, errNoConfig
	}
	if d, ok := r.Context().Value(capturedKey{}).(*capturedDst); ok {
		return o.captured(r, cfg, d)
	}
	host := r.URL.Host
	if host == "" {
		host = r.Host
	}
	u := cfg.Lookup(host, 80)
	if u == nil {
		if registryOnly(cfg) {
			return nil, fmt.Errorf("proxy: %s is not a known service (outboundTrafficPolicy REGISTRY_ONLY)", host)
		}
		r.URL.Scheme = "http"
		r.URL.Host = host
		return http.DefaultTransport.RoundTrip(r)
	}
	return o.toService(r, cfg, u, "")
}

// toService sends r to upstream u, to its endpoint pin when pin is set.
func (o outboundRT) toService(r *http.Request, cfg *Compiled, u *Upstream, pin string) (*http.Response, error) {
	rt := o.p.route(cfg, u)
	rt.pin = pin
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
	service, principal, addr, flags string
	cluster                         string // Istio's PassthroughCluster or BlackHoleCluster
	mtls                            bool
}

type upstreamInfoKey struct{}
