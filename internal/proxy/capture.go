package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"palisade.dev/palisade/internal/telemetry"
)

// Istio's names for where a captured connection to no mesh service
// goes: PassthroughCluster under ALLOW_ANY, BlackHoleCluster under
// REGISTRY_ONLY. Records carry them as the destination service, as
// Istio's metrics do.
const (
	PassthroughCluster = "PassthroughCluster"
	BlackHoleCluster   = "BlackHoleCluster"
)

// errBlackHole refuses an HTTP request to no mesh service under
// REGISTRY_ONLY: Envoy's block_all route answers 502.
var errBlackHole = errors.New("proxy: destination outside the mesh (outboundTrafficPolicy REGISTRY_ONLY)")

// capturedDst is what the outbound capture worked out of a connection:
// its original destination and the mesh service port it is for (nil
// outside the mesh), pinned to one endpoint when the app named one.
type capturedDst struct {
	addr netip.AddrPort
	u    *Upstream
	pin  string
}

type capturedKey struct{}

// capturedConn hands a captured connection sniffed as HTTP to the
// outbound HTTP server with its destination.
type capturedConn struct {
	net.Conn
	dst capturedDst
}

// serveCaptureOutbound is Istio's virtual outbound listener (15001):
// every connection the app opens arrives here by iptables REDIRECT.
func (p *Proxy) serveCaptureOutbound(ctx context.Context, ln net.Listener) error {
	httpLn := newChanListener(ln.Addr())
	srv := p.outboundServer()
	p.track(srv)
	go srv.Serve(httpLn) //nolint:errcheck // ends with Close
	defer httpLn.Close()
	return acceptLoop(ctx, ln, func(c net.Conn) { p.acceptCapturedOutbound(c, httpLn) })
}

func (p *Proxy) acceptCapturedOutbound(c net.Conn, httpLn *chanListener) {
	dst, err := originalDst(c)
	if err != nil {
		p.log.Warn("captured outbound connection without its original destination", "remote", c.RemoteAddr(), "err", err)
		reset(c)
		return
	}
	if local, ok := c.LocalAddr().(*net.TCPAddr); ok && local.AddrPort() == dst || p.ownPort(dst) {
		// Not redirected (a client dialled the listener itself), or
		// headed for the sidecar's own listeners: never loop.
		reset(c)
		return
	}
	cfg := p.store.Current()
	if cfg == nil {
		reset(c)
		return
	}
	d := capturedDst{addr: dst}
	d.u, d.pin = cfg.LookupAddr(dst)
	br := bufio.NewReader(c)
	pc := &peekedConn{Conn: c, r: br, direct: true}
	if d.u == nil && !registryOnly(cfg) {
		// ALLOW_ANY: Istio's PassthroughCluster, opaque TCP to the
		// original destination, whatever the protocol.
		p.tunnelTo(pc, cfg, nil, "", dst.String(), PassthroughCluster)
		return
	}
	proto := ProtoUnknown
	if d.u != nil {
		proto = d.u.Protocol
	}
	if proto == ProtoUnknown {
		// Istio's protocol sniffing: wait for the app's first bytes as
		// long as meshConfig.protocolDetectionTimeout allows (no limit
		// when unset, as in Istio since 1.8); when it passes, the
		// connection is opaque TCP. Refusing a destination outside the
		// mesh waits at most blackHoleSniff, for a server-first protocol.
		t := cfg.Mesh.GetProtocolDetectionTimeout().AsDuration()
		if d.u == nil && (t == 0 || t > blackHoleSniff) {
			t = blackHoleSniff
		}
		if t > 0 {
			_ = c.SetReadDeadline(time.Now().Add(t))
		}
		proto = p.sniff(pc)
		_ = c.SetReadDeadline(time.Time{})
	}
	switch {
	case proto != ProtoTCP:
		httpLn.deliver(&capturedConn{Conn: pc, dst: d})
	case d.u != nil:
		p.tunnelTo(pc, cfg, d.u, d.pin, joinHostPort(d.u.Host, d.u.Port), "")
	case p.admittedTLS(pc, br, cfg, dst):
	default:
		// REGISTRY_ONLY: Envoy's BlackHoleCluster has no hosts, the
		// connection closes.
		p.observe(&Record{Start: time.Now(), Protocol: telemetry.ProtocolTCP, Direction: telemetry.Outbound, ResponseFlags: "UH",
			SourceNamespace: p.opts.Self.Ref.Namespace, SourceWorkload: p.opts.Self.Ref.Name, SourcePrincipal: p.selfID(),
			DestinationService: BlackHoleCluster, DestinationServiceName: BlackHoleCluster, UpstreamCluster: BlackHoleCluster,
			UpstreamHost: dst.String(), DownstreamRemote: c.RemoteAddr().String()})
		c.Close()
	}
}

// admittedTLS carries a TLS connection to a destination with no
// address of its own in the registry when a ServiceEntry admits it by
// SNI at that port (hosts such as *.example.com, resolution NONE or
// DNS): to the ServiceEntry's endpoints when it has any, else to the
// original destination, as Istio's REGISTRY_ONLY lets such traffic out.
func (p *Proxy) admittedTLS(pc *peekedConn, br *bufio.Reader, cfg *Compiled, dst netip.AddrPort) bool {
	_, sni, ok := peekHello(br)
	if !ok || sni == "" {
		return false
	}
	u := cfg.LookupWildcard(sni, uint32(dst.Port()))
	if u == nil {
		return false
	}
	if len(u.Endpoints) > 0 {
		p.tunnelTo(pc, cfg, u, "", joinHostPort(sni, u.Port), "")
		return true
	}
	p.tunnelTo(pc, cfg, nil, "", dst.String(), serviceCluster(u))
	return true
}

// serviceCluster is Envoy's name for an outbound cluster of a service
// port, as Istio names it.
func serviceCluster(u *Upstream) string {
	return fmt.Sprintf("outbound|%d||%s", u.Port, u.Host)
}

// blackHoleSniff bounds the wait for an app's first bytes to a
// destination REGISTRY_ONLY refuses: HTTP gets its 502, anything else
// is closed.
const blackHoleSniff = time.Second

// ownPort reports whether dst is one of the sidecar's own capture
// listeners' ports on any address: an app never reaches them through
// the capture.
func (p *Proxy) ownPort(dst netip.AddrPort) bool {
	for _, a := range []string{p.opts.CaptureOutbound, p.opts.CaptureInbound} {
		if ap, err := netip.ParseAddrPort(a); err == nil && ap.Port() == dst.Port() {
			return true
		}
	}
	return false
}

// captured sends a request of a captured connection: to the mesh
// service its original destination is, else through to the original
// destination (ALLOW_ANY) or refused (REGISTRY_ONLY).
func (o outboundRT) captured(r *http.Request, cfg *Compiled, d *capturedDst) (*http.Response, error) {
	info, _ := r.Context().Value(upstreamInfoKey{}).(*upstreamInfo)
	if d.u != nil {
		return o.toService(r, cfg, d.u, d.pin)
	}
	if info != nil {
		info.addr = d.addr.String()
	}
	if registryOnly(cfg) {
		if u := cfg.LookupWildcard(hostOnly(r.Host), uint32(d.addr.Port())); u != nil {
			// A ServiceEntry admits the Host at this port.
			if len(u.Endpoints) > 0 {
				return o.toService(r, cfg, u, "")
			}
			if info != nil {
				info.service, info.cluster = u.Host, serviceCluster(u)
			}
			return o.toOriginal(r, d)
		}
		if info != nil {
			info.service, info.cluster = BlackHoleCluster, BlackHoleCluster
		}
		return nil, errBlackHole
	}
	if info != nil {
		info.service, info.cluster = PassthroughCluster, PassthroughCluster
	}
	return o.toOriginal(r, d)
}

// toOriginal sends r to the captured connection's original destination.
func (o outboundRT) toOriginal(r *http.Request, d *capturedDst) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", d.addr.String(), ""
	return passthrough.RoundTrip(out)
}

// passthrough carries ALLOW_ANY requests to their original destination,
// never through a proxy from the environment.
var passthrough = &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 16,
	IdleConnTimeout:     90 * time.Second,
}

// serveCaptureInbound is Istio's virtual inbound listener (15006): the
// original destination port picks the workload port, and the
// connection takes that port's path (PeerAuthentication, policy, the
// app at its address). A port the workload does not declare is opaque
// TCP to the original destination, with the policies of that port.
func (p *Proxy) serveCaptureInbound(ctx context.Context, ln net.Listener) error {
	type target struct {
		in     InboundPort
		httpLn *chanListener
	}
	ports := map[uint16]target{}
	for _, in := range p.opts.Inbound {
		t := target{in: in, httpLn: newChanListener(ln.Addr())}
		if in.Protocol != ProtoTCP {
			srv := p.inboundServer(in)
			p.track(srv)
			go srv.Serve(t.httpLn) //nolint:errcheck // ends with Close
		}
		defer t.httpLn.Close()
		ports[uint16(in.Port)] = t
	}
	return acceptLoop(ctx, ln, func(c net.Conn) {
		dst, err := originalDst(c)
		if err != nil {
			p.log.Warn("captured inbound connection without its original destination", "remote", c.RemoteAddr(), "err", err)
			reset(c)
			return
		}
		if local, ok := c.LocalAddr().(*net.TCPAddr); ok && local.AddrPort() == dst || p.ownPort(dst) {
			reset(c)
			return
		}
		t, ok := ports[dst.Port()]
		if !ok {
			// Istio's InboundPassthroughCluster: to the original
			// destination itself, from 127.0.0.6 (::6), which the capture
			// rules let through; never to loopback, where the sidecar's
			// own admin and DNS listeners are.
			t.in = InboundPort{Port: uint32(dst.Port()), Protocol: ProtoTCP, App: dst.String(), passthrough: true}
		}
		p.acceptInbound(c, t.in, t.httpLn)
	})
}

// captureListen binds the capture listeners that are configured.
func (p *Proxy) captureListen() error {
	for _, a := range []*string{&p.opts.CaptureOutbound, &p.opts.CaptureInbound} {
		if *a == "" {
			continue
		}
		ln, err := net.Listen("tcp", *a)
		if err != nil {
			return fmt.Errorf("proxy: capture listener %s: %w", *a, err)
		}
		*a = ln.Addr().String()
		p.listeners = append(p.listeners, ln)
	}
	return nil
}

// Istio's inbound passthrough source addresses: the capture rules
// return connections from them on loopback, so they are not captured
// again.
var (
	passthroughSource4 = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 6)}
	passthroughSource6 = &net.TCPAddr{IP: net.ParseIP("::6")}
)

// dialApp connects to the app of an inbound port.
func dialApp(in InboundPort) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if in.passthrough {
		d.LocalAddr = passthroughSource4
		if ap, err := netip.ParseAddrPort(in.App); err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() {
			d.LocalAddr = passthroughSource6
		}
	}
	return d.Dial("tcp", in.App)
}
