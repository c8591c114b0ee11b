package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"palisade.dev/palisade/internal/config"
)

// InboundPort is one service port of the workload: where the sidecar
// listens for it and where the app serves it.
type InboundPort struct {
	Port     uint32 // the service (workload) port that policies name
	Name     string
	Protocol Protocol
	Listen   string // sidecar listener, host:port
	App      string // the app, host:port on loopback
	// passthrough marks a captured port the workload does not declare:
	// App is the original destination, dialled as Istio's
	// InboundPassthroughCluster is.
	passthrough bool
}

// OutboundPort is a local port bound for one upstream: anything written
// to it goes to Target (host:port as the app would name it).
type OutboundPort struct {
	Listen string
	Target string
}

// Options configure a sidecar.
type Options struct {
	Self     Self
	Inbound  []InboundPort
	HTTP     string // outbound HTTP proxy listener (HTTP_PROXY), "" for none
	Outbound []OutboundPort
	// Gateway listeners, for an ingress gateway (Self.Ref.Gateway set).
	Gateway []GatewayListener
	// CredentialsDir holds a gateway's TLS credentials by credentialName:
	// DIR/<name>/tls.crt, tls.key and, for MUTUAL, ca.crt.
	CredentialsDir string
	// CaptureOutbound and CaptureInbound are the listeners iptables
	// redirects a captured workload's traffic to (Istio's 0.0.0.0:15001
	// and 0.0.0.0:15006); "" for none. With CaptureInbound set, the
	// Inbound ports are served there, picked by original destination
	// port, and their Listen addresses are not bound.
	CaptureOutbound string
	CaptureInbound  string
	// HandshakeTimeout bounds the TLS handshake and protocol sniffing of
	// a new inbound connection (default 10s).
	HandshakeTimeout time.Duration
	// Limits bound what a downstream client may cost; zero fields take
	// Envoy's defaults.
	Limits Limits
}

// Proxy is a running sidecar.
type Proxy struct {
	opts  Options
	log   *slog.Logger
	store *Store
	certs Certs
	tel   *Telemetry

	sessions sessions // TLS session resumption, tied to our certificate

	mu        sync.Mutex
	listeners []net.Listener
	servers   []*http.Server
	upstreams *upstreamPool
	authz     authorizers

	self        atomic.Pointer[selfID] // cached for selfID
	destService string                 // inbound records' destination_service
	labels      workloadLabels         // the workload's side of every record
	conns       atomic.Int64           // downstream connections open, for Limits.MaxConnections
}

// New returns a sidecar serving with certs and the config in store.
func New(opts Options, store *Store, certs Certs, tel *Telemetry, log *slog.Logger) *Proxy {
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	opts.Limits = opts.Limits.withDefaults()
	p := &Proxy{opts: opts, log: log, store: store, certs: certs, tel: tel, destService: destinationService(opts.Self.Ref),
		labels: labelsOf(opts.Self.Ref.Labels)}
	p.upstreams = newUpstreamPool(p)
	return p
}

// Listen binds every listener, so that callers learn bound addresses
// (ports given as :0) before serving.
func (p *Proxy) Listen() error {
	for i, in := range p.opts.Inbound {
		if p.opts.CaptureInbound != "" {
			break
		}
		ln, err := net.Listen("tcp", in.Listen)
		if err != nil {
			p.Close()
			return fmt.Errorf("proxy: inbound port %d: %w", in.Port, err)
		}
		p.opts.Inbound[i].Listen = ln.Addr().String()
		p.listeners = append(p.listeners, ln)
	}
	if p.opts.HTTP != "" {
		ln, err := net.Listen("tcp", p.opts.HTTP)
		if err != nil {
			p.Close()
			return fmt.Errorf("proxy: outbound http: %w", err)
		}
		p.opts.HTTP = ln.Addr().String()
		p.listeners = append(p.listeners, ln)
	}
	for i, g := range p.opts.Gateway {
		ln, err := net.Listen("tcp", g.Listen)
		if err != nil {
			p.Close()
			return fmt.Errorf("proxy: gateway port %d: %w", g.Port, err)
		}
		p.opts.Gateway[i].Listen = ln.Addr().String()
		p.listeners = append(p.listeners, ln)
	}
	for i, o := range p.opts.Outbound {
		ln, err := net.Listen("tcp", o.Listen)
		if err != nil {
			p.Close()
			return fmt.Errorf("proxy: outbound port for %s: %w", o.Target, err)
		}
		p.opts.Outbound[i].Listen = ln.Addr().String()
		p.listeners = append(p.listeners, ln)
	}
	if err := p.captureListen(); err != nil {
		p.Close()
		return err
	}
	return nil
}

// Options returns the options with bound addresses filled in.
func (p *Proxy) Options() Options { return p.opts }

// Serve runs every listener until ctx ends.
func (p *Proxy) Serve(ctx context.Context) error {
	if len(p.listeners) == 0 {
		if err := p.Listen(); err != nil {
			return err
		}
	}
	errc := make(chan error, len(p.listeners))
	i := 0
	for _, in := range p.opts.Inbound {
		if p.opts.CaptureInbound != "" {
			break
		}
		go func(ln net.Listener, in InboundPort) { errc <- p.serveInbound(ctx, ln, in) }(p.listeners[i], in)
		i++
	}
	if p.opts.HTTP != "" {
		go func(ln net.Listener) { errc <- p.serveOutboundHTTP(ctx, ln) }(p.listeners[i])
		i++
	}
	for _, g := range p.opts.Gateway {
		go func(ln net.Listener, g GatewayListener) { errc <- p.serveGateway(ctx, ln, g) }(p.listeners[i], g)
		i++
	}
	for _, o := range p.opts.Outbound {
		go func(ln net.Listener, o OutboundPort) { errc <- p.serveOutboundPort(ctx, ln, o) }(p.listeners[i], o)
		i++
	}
	if p.opts.CaptureOutbound != "" {
		go func(ln net.Listener) { errc <- p.serveCaptureOutbound(ctx, ln) }(p.listeners[i])
		i++
	}
	if p.opts.CaptureInbound != "" {
		go func(ln net.Listener) { errc <- p.serveCaptureInbound(ctx, ln) }(p.listeners[i])
	}
	select {
	case <-ctx.Done():
		p.Close()
		return nil
	case err := <-errc:
		p.Close()
		return err
	}
}

// Close stops every listener and server.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ln := range p.listeners {
		ln.Close()
	}
	for _, s := range p.servers {
		s.Close()
	}
	p.upstreams.close()
	p.authz.close()
}

func (p *Proxy) track(s *http.Server) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.servers = append(p.servers, s)
}

func acceptLoop(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go handle(c)
	}
}

// WorkloadRef returns the proxy's own workload.
func (p *Proxy) WorkloadRef() config.WorkloadRef { return p.opts.Self.Ref }
