package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"palisade.dev/palisade/internal/telemetry"
)

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

// tunnel carries an app connection to target, a host:port as the app
// named it.
func (p *Proxy) tunnel(app net.Conn, target string) {
	cfg := p.store.Current()
	if cfg == nil { // no config pushed yet: refused, as inbound is
		reset(app)
		return
	}
	u := cfg.Lookup(target, 0)
	p.tunnelTo(app, cfg, u, "", target, "")
}

// tunnelTo carries an app connection to upstream u (its endpoint pin,
// when set) over the route's TLS, or, with u nil, to target outside the
// mesh as outboundTrafficPolicy allows. For mesh mTLS it sniffs the
// app's first bytes to offer the right ALPN, so the server's sidecar can
// parse HTTP/2 (gRPC) and HTTP/1.1. cluster names Envoy's cluster for
// the record, where it matters: PassthroughCluster, or the cluster of
// the ServiceEntry that admitted a destination outside the registry
// (then u is nil and REGISTRY_ONLY lets it through).
func (p *Proxy) tunnelTo(app net.Conn, cfg *Compiled, u *Upstream, pin, target, cluster string) {
	defer app.Close()
	start := time.Now()
	rec := &Record{Start: start, Protocol: telemetry.ProtocolTCP, Direction: telemetry.Outbound, Authority: target,
		SourceNamespace: p.opts.Self.Ref.Namespace, SourceWorkload: p.opts.Self.Ref.Name, SourcePrincipal: p.selfID(),
		DestinationService: target, UpstreamCluster: cluster}
	if cluster == PassthroughCluster {
		rec.DestinationService, rec.DestinationServiceName = cluster, cluster
	}
	defer func() { rec.Duration = time.Since(start); p.observe(rec) }()
	var up net.Conn
	var err error
	if u == nil {
		if registryOnly(cfg) && cluster == "" {
			rec.ResponseFlags = "NR"
			return
		}
		up, err = net.DialTimeout("tcp", target, 5*time.Second)
	} else {
		rt := p.route(cfg, u)
		rt.pin = pin
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

// registryOnly reports whether meshConfig.outboundTrafficPolicy is
// REGISTRY_ONLY. An absent policy is Istio's default, ALLOW_ANY; the
// proto's zero value would read as REGISTRY_ONLY.
func registryOnly(cfg *Compiled) bool {
	p := cfg.Mesh.GetOutboundTrafficPolicy()
	return p != nil && p.GetMode() == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY
}

func isHTTPMethod(s string) bool {
	for _, m := range []string{"GET", "POS", "PUT", "HEA", "DEL", "PAT", "OPT", "TRA"} {
		if s == m {
			return true
		}
	}
	return false
}
