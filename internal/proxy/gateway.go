package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/telemetry"
	"palisade.dev/palisade/internal/xfcc"
)

// GatewayListener binds one Gateway server port (the port the Gateway
// resource names, which policies see) to a local address.
type GatewayListener struct {
	Port   uint32
	Listen string
}

// errSNI stops a handshake once the ClientHello has been read.
var errSNI = errors.New("proxy: client hello read")

// serveGateway runs one gateway port: TLS is terminated (SIMPLE, MUTUAL)
// or passed through by SNI (PASSTHROUGH), plain HTTP is served, each as
// the Gateway servers for that port say.
func (p *Proxy) serveGateway(ctx context.Context, ln net.Listener, gl GatewayListener) error {
	httpLn := newChanListener(ln.Addr())
	srv := p.gatewayServer(gl.Port)
	p.track(srv)
	go srv.Serve(httpLn) //nolint:errcheck // ends with Close
	defer httpLn.Close()
	return acceptLoop(ctx, ln, func(c net.Conn) { p.acceptGateway(c, gl, httpLn) })
}

func (p *Proxy) acceptGateway(c net.Conn, gl GatewayListener, httpLn *chanListener) {
	cfg := p.store.Current()
	var gp *gatewayPort
	if cfg != nil && cfg.gateway != nil {
		gp = cfg.gateway.ports[gl.Port]
	}
	if gp == nil {
		reset(c)
		return
	}
	if c = p.admitConn(c); c == nil {
		return
	}
	_ = c.SetDeadline(time.Now().Add(p.opts.HandshakeTimeout))
	var rec bytes.Buffer
	hello := &recordingConn{Conn: c, r: io.TeeReader(c, &rec)}
	var sni string
	isTLS := false
	first := make([]byte, 1)
	if _, err := io.ReadFull(hello, first); err != nil {
		c.Close()
		return
	}
	if first[0] == 0x16 {
		isTLS = true
		hello.r = io.MultiReader(bytes.NewReader(first), hello.r)
		_ = tls.Server(hello, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = h.ServerName
			return nil, errSNI
		}}).Handshake()
	}
	replay := &peekedConn{Conn: c, r: bufioReader(io.MultiReader(bytes.NewReader(rec.Bytes()), c))}
	if !isTLS {
		_ = c.SetDeadline(time.Time{})
		httpLn.deliver(p.newH1Guard(replay))
		return
	}
	srv := gp.serverFor(sni, true)
	if srv == nil {
		p.log.Info("gateway: no server for SNI", "port", gl.Port, "sni", sni)
		reset(c)
		return
	}
	if !srv.Terminates() {
		_ = c.SetDeadline(time.Time{})
		tr := srv.sniRoute(sni)
		if tr == nil {
			p.log.Info("gateway: no TLS route for SNI", "port", gl.Port, "sni", sni, "gateway", srv.gateway)
			reset(c)
			return
		}
		port := tr.dest.port
		if port == 0 {
			if u := cfg.LookupService(tr.dest.host, 0); u != nil {
				port = u.Port
			}
		}
		p.tunnel(replay, joinHostPort(tr.dest.host, port))
		return
	}
	tcfg, err := p.gatewayTLS(srv)
	if err != nil {
		p.log.Error("gateway: TLS config", "gateway", srv.gateway, "port", gl.Port, "err", err)
		reset(c)
		return
	}
	tc := tls.Server(replay, tcfg)
	if err := tc.Handshake(); err != nil {
		p.log.Info("gateway: TLS handshake failed", "port", gl.Port, "sni", sni, "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	// HTTP/1.1 and HTTP/2 over TLS go through the guard (which times
	// HTTP/2 header blocks too); the handler finds the TLS state in the
	// request's context.
	httpLn.deliver(&tlsStateConn{Conn: p.newH1Guard(tc), state: tc.ConnectionState()})
}

// tlsStateConn is a TLS connection behind the guard, with its state,
// which net/http no longer sees for itself.
type tlsStateConn struct {
	net.Conn
	state tls.ConnectionState
}

type tlsStateKey struct{}

type recordingConn struct {
	net.Conn
	r io.Reader
}

func (c *recordingConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *recordingConn) Write(b []byte) (int, error) { return 0, errSNI }

// gatewayTLS is the server TLS config of a terminating Gateway server:
// its certificate from files or a credential, and for MUTUAL the client
// CA. Files are read per handshake, so a rotated certificate is picked up.
func (p *Proxy) gatewayTLS(s *gatewayServer) (*tls.Config, error) {
	certFile, keyFile, caFile := s.tls.GetServerCertificate(), s.tls.GetPrivateKey(), s.tls.GetCaCertificates()
	if name := s.tls.GetCredentialName(); name != "" {
		dir := filepath.Join(p.opts.CredentialsDir, name)
		certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err == nil && caFile == "" {
			caFile = filepath.Join(dir, "ca.crt")
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server certificate of %s: %w", s.gateway, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	switch s.tls.GetMode() {
	case networkingv1alpha3.ServerTLSSettings_MUTUAL, networkingv1alpha3.ServerTLSSettings_OPTIONAL_MUTUAL:
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("client CA of %s: %w", s.gateway, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("client CA of %s: no certificates in %s", s.gateway, caFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if s.tls.GetMode() == networkingv1alpha3.ServerTLSSettings_OPTIONAL_MUTUAL {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}

func (p *Proxy) gatewayServer(port uint32) *http.Server {
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: p.gatewayHandler(port), Protocols: protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tlsStateConn); ok {
				return context.WithValue(ctx, tlsStateKey{}, &tc.state)
			}
			return ctx
		}}
	p.applyLimits(srv)
	return srv
}

func (p *Proxy) gatewayHandler(port uint32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cfg := p.store.Current()
		sw := &statusWriter{ResponseWriter: w}
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok && r.TLS == nil {
			r.TLS = st
		}
		// A client certificate at the edge is not a mesh identity: the
		// gateway's caller is a plaintext peer to authorization.
		ci := newConnInfo(addrOf(r.RemoteAddr), spiffeid.ID{}, nil)
		rec := &Record{Start: start, Protocol: protoName(r), HTTPVersion: r.Proto, Direction: telemetry.Inbound,
			Method: r.Method, Authority: r.Host, UserAgent: r.UserAgent(), DownstreamRemote: r.RemoteAddr, ForwardedFor: r.Header.Get("X-Forwarded-For"),
			DestinationNamespace: p.opts.Self.Ref.Namespace, DestinationWorkload: p.opts.Self.Ref.Name, DestinationPort: port}
		defer func() {
			rec.ResponseCode, rec.BytesSent, rec.Duration = sw.code(), sw.n, time.Since(start)
			p.observe(rec)
		}()
		var gp *gatewayPort
		if cfg.gateway != nil {
			gp = cfg.gateway.ports[port]
		}
		var srv *gatewayServer
		if gp != nil {
			if r.TLS != nil {
				// The server whose certificate (and client CA) the
				// handshake used, chosen by SNI.
				srv = gp.serverFor(r.TLS.ServerName, true)
			} else {
				srv = gp.serverFor(r.Host, false)
			}
		}
		if srv == nil {
			rec.ResponseFlags = "NR"
			http.Error(sw, "", http.StatusNotFound)
			return
		}
		if r.TLS == nil && srv.tls.GetHttpsRedirect() {
			http.Redirect(sw, r, "https://"+hostOnly(r.Host)+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		path, ok := p.normalizeRequest(sw, r, cfg, rec)
		if !ok || p.tooManyHeaders(sw, r) {
			return
		}
		areq := p.authzRequest(r, port, &ci, path)
		if !p.admit(sw, r, cfg, areq, rec) {
			return
		}
		hr, match := srv.route(r, port)
		if hr == nil {
			rec.ResponseFlags = "NR"
			http.Error(sw, "", http.StatusNotFound)
			return
		}
		rec.Policy = strings.TrimSpace(rec.Policy)
		switch {
		case hr.route.GetDirectResponse() != nil:
			d := hr.route.GetDirectResponse()
			sw.WriteHeader(int(d.GetStatus()))
			io.WriteString(sw, d.GetBody().GetString_()) //nolint:errcheck
			return
		case hr.route.GetRedirect() != nil:
			p.redirect(sw, r, hr.route.GetRedirect())
			return
		}
		u := cfg.LookupService(hr.dest.host, hr.dest.port)
		if u == nil {
			rec.ResponseFlags = "NR"
			http.Error(sw, "no healthy upstream", http.StatusServiceUnavailable)
			return
		}
		rec.DestinationService = u.Host
		p.prepareForwarded(r, srv)
		rw := hr.route.GetRewrite()
		if rw.GetUri() != "" {
			r.URL.Path = rewritePath(r.URL.Path, rw.GetUri(), match)
			r.URL.RawPath = ""
		}
		// The stream idle timeout, as on the sidecar's inbound.
		wr, wreq, stop := p.watchStream(sw, r)
		defer stop()
		out := wreq.Clone(wreq.Context())
		if rw.GetAuthority() != "" {
			out.Host = rw.GetAuthority()
		}
		rt := p.route(cfg, u)
		out.URL.Host = fmt.Sprintf("%s:%d", u.Host, u.Port)
		out.URL.Scheme = "http"
		if rt.mode != modePlain {
			out.URL.Scheme = "https"
			rec.MTLS = rt.mode == modeIstio
		}
		out.RequestURI = ""
		resp, err := p.upstreams.transport(rt).RoundTrip(out)
		if err != nil {
			p.log.Warn("gateway: upstream failed", "service", u.Service, "err", err)
			rec.ResponseFlags = "UF"
			if idledOut(wreq) {
				rec.ResponseFlags = "SI"
			}
			upstreamError(sw, wreq, err)
			return
		}
		defer resp.Body.Close()
		if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 && len(resp.TLS.PeerCertificates[0].URIs) > 0 {
			rec.DestinationPrincipal = resp.TLS.PeerCertificates[0].URIs[0].String()
		}
		for k, vs := range resp.Header {
			sw.Header()[k] = vs
		}
		sw.WriteHeader(resp.StatusCode)
		copyFlush(wr, resp.Body)
		if idledOut(wreq) {
			// Cut, as Envoy resets a stream whose answer began: a
			// clean end would pass the cut answer off as whole.
			rec.ResponseFlags = "SI"
			panic(http.ErrAbortHandler)
		}
	})
}

// prepareForwarded sets the headers Envoy's gateway sets: X-Forwarded-For
// (appended), X-Forwarded-Proto, X-Request-Id, and X-Forwarded-Client-Cert
// as SANITIZE_SET, Istio's gateway default.
func (p *Proxy) prepareForwarded(r *http.Request, srv *gatewayServer) {
	ip := hostOnly(r.RemoteAddr)
	if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
		r.Header.Set("X-Forwarded-For", prior+", "+ip)
	} else {
		r.Header.Set("X-Forwarded-For", ip)
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	r.Header.Set("X-Forwarded-Proto", proto)
	if r.Header.Get("X-Request-Id") == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		r.Header.Set("X-Request-Id", hex.EncodeToString(b[:]))
	}
	hasCert := r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	current := ""
	if hasCert {
		current = xfcc.Current(nil, r.TLS.PeerCertificates, xfcc.IstioSidecar)
	}
	if v, keep := xfcc.Forward(xfcc.SanitizeSet, "", hasCert, current); keep {
		r.Header.Set("X-Forwarded-Client-Cert", v)
	} else {
		r.Header.Del("X-Forwarded-Client-Cert")
	}
}

func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request, rd *networkingv1alpha3.HTTPRedirect) {
	scheme := rd.GetScheme()
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	host := rd.GetAuthority()
	if host == "" {
		host = hostOnly(r.Host)
	}
	if rd.GetPort() != 0 {
		host = net.JoinHostPort(host, strconv.FormatUint(uint64(rd.GetPort()), 10))
	}
	path := rd.GetUri()
	if path == "" {
		path = r.URL.RequestURI()
	}
	code := int(rd.GetRedirectCode())
	if code == 0 {
		code = http.StatusMovedPermanently
	}
	http.Redirect(w, r, scheme+"://"+host+path, code)
}

func copyFlush(w http.ResponseWriter, r io.Reader) {
	buf := make([]byte, 32<<10)
	f, _ := w.(http.Flusher)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
