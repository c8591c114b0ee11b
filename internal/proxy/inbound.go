package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/telemetry"
)

// peekedConn is a connection whose first bytes were read for sniffing.
// Reads drain r first. When r reads straight from Conn (direct), it is
// let go once drained, so a long-lived connection does not keep its
// buffer.
type peekedConn struct {
	net.Conn
	r      *bufio.Reader
	direct bool
}

func (c *peekedConn) Read(b []byte) (int, error) {
	if c.r != nil {
		if !c.direct || c.r.Buffered() > 0 {
			return c.r.Read(b)
		}
		c.r = nil
	}
	return c.Conn.Read(b)
}

// connInfo is what an inbound request knows of its connection.
type connInfo struct {
	mtls   bool
	peerID spiffeid.ID
	peer   *tls.ConnectionState
	remote net.Addr
	xfcc   *xfccOnce // this connection's XFCC element, built once

	// Worked out once per connection, by newConnInfo, for every
	// request's record and authorization.
	remoteStr string     // remote.String()
	sourceIP  netip.Addr // ipOf(remote)
	principal string     // identity.Principal(peerID), "" without mTLS
	peerStr   string     // peerID.String(), "" without mTLS
	peerNS    string     // the peer's namespace, "" when not ns/sa
}

// newConnInfo describes a connection from remote; with a verified mesh
// peer (peerID set, peer its TLS state) it is mutual TLS.
func newConnInfo(remote net.Addr, peerID spiffeid.ID, peer *tls.ConnectionState) connInfo {
	ci := connInfo{remote: remote, xfcc: &xfccOnce{}}
	if remote != nil {
		ci.remoteStr = remote.String()
		ci.sourceIP = ipOf(remote)
	}
	if !peerID.IsZero() && peer != nil {
		ci.mtls, ci.peerID, ci.peer = true, peerID, peer
		ci.principal = identity.Principal(peerID)
		ci.peerStr = peerID.String()
		ci.peerNS, _, _ = nsSA(peerID)
	}
	return ci
}

// xfccOnce holds a connection's encoded XFCC element: the client
// certificate does not change for the life of the connection.
type xfccOnce struct {
	once  sync.Once
	value string
}

type connInfoKey struct{}

func (p *Proxy) serveInbound(ctx context.Context, ln net.Listener, in InboundPort) error {
	httpLn := newChanListener(ln.Addr())
	if in.Protocol != ProtoTCP {
		srv := p.inboundServer(in)
		p.track(srv)
		go srv.Serve(httpLn) //nolint:errcheck // ends with Close
	}
	defer httpLn.Close()
	return acceptLoop(ctx, ln, func(c net.Conn) { p.acceptInbound(c, in, httpLn) })
}

// meshHello reports whether the TLS ClientHello at the head of br comes
// from a mesh peer; a hello it cannot read is taken for one, so the
// connection gets the mTLS handshake it would have had anyway.
func (p *Proxy) meshHello(br *bufio.Reader) bool {
	alpn, ok := peekClientHello(br)
	return !ok || offersMeshALPN(alpn)
}

func (p *Proxy) acceptInbound(c net.Conn, in InboundPort, httpLn *chanListener) {
	cfg := p.store.Current()
	if cfg == nil {
		reset(c)
		return
	}
	if c = p.admitConn(c); c == nil {
		return
	}
	decision := cfg.Peer.Mode(in.Port)
	deadline := time.Now().Add(p.opts.HandshakeTimeout)
	_ = c.SetDeadline(deadline)
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br, direct: true}
	isTLS := first[0] == 0x16
	var conn net.Conn = pc
	ci := newConnInfo(c.RemoteAddr(), spiffeid.ID{}, nil)
	switch {
	case decision.Mode == authn.Disable:
		// The sidecar does not terminate TLS; whatever arrives goes to
		// the app as it is.
		if isTLS {
			_ = c.SetDeadline(time.Time{})
			p.forwardTCP(pc, in, ci)
			return
		}
	case !isTLS && decision.Mode == authn.Strict:
		p.log.Info("plaintext connection refused by STRICT mTLS", "port", in.Port, "remote", c.RemoteAddr(), "policy", decision.Source)
		p.observe(&Record{Start: time.Now(), Protocol: telemetry.ProtocolTCP, Direction: telemetry.Inbound, ResponseFlags: "NR", DownstreamRemote: c.RemoteAddr().String(), DestinationPort: in.Port,
			DestinationNamespace: p.opts.Self.Ref.Namespace, DestinationWorkload: p.opts.Self.Ref.Name, Decision: "DENY", Policy: "PeerAuthentication " + decision.Source})
		reset(c)
		return
	case isTLS && decision.Mode == authn.Permissive && !p.meshHello(br):
		// PERMISSIVE: TLS that is not a mesh peer's (no "istio" ALPN) is
		// the app's own, passed through as Istio's sidecars pass it.
		_ = c.SetDeadline(time.Time{})
		p.forwardTCP(pc, in, ci)
		return
	case isTLS:
		// A calling sidecar also offers meshALPN: it is chosen when none
		// of the real protocols is, so the handshake never fails on ALPN.
		alpn := []string{"h2", "http/1.1", meshALPN}
		if in.Protocol == ProtoTCP {
			alpn = nil
		}
		var id spiffeid.ID
		tc := tls.Server(pc, p.serverTLS(alpn, &id))
		if err := tc.Handshake(); err != nil {
			p.log.Info("inbound TLS handshake failed", "port", in.Port, "remote", c.RemoteAddr(), "err", err)
			c.Close()
			return
		}
		if id.IsZero() {
			c.Close() // never so: a handshake that succeeds verified the peer
			return
		}
		st := tc.ConnectionState()
		ci = newConnInfo(c.RemoteAddr(), id, &st)
		conn = tc
	}
	proto := in.Protocol
	if proto == ProtoUnknown {
		if tc, ok := conn.(*tls.Conn); ok {
			// A sidecar offers ALPN for the HTTP it sniffed on its side;
			// without ALPN the decrypted bytes decide.
			switch tc.ConnectionState().NegotiatedProtocol {
			case "h2":
				proto = ProtoHTTP2
			case "http/1.1":
				proto = ProtoHTTP
			default:
				dc := &peekedConn{Conn: tc, r: bufio.NewReader(tc), direct: true}
				conn, proto = dc, p.sniff(dc)
			}
		} else {
			proto = p.sniff(pc)
		}
	}
	_ = c.SetDeadline(time.Time{})
	if proto == ProtoTCP {
		p.forwardTCP(conn, in, ci)
		return
	}
	httpLn.deliver(&infoConn{Conn: p.newH1Guard(conn), info: ci})
}

// sniffPrefixes are the openings that make a stream HTTP.
var sniffPrefixes = []struct {
	prefix string
	proto  Protocol
}{
	{"PRI * HT", ProtoHTTP2},
	{"GET ", ProtoHTTP}, {"POST", ProtoHTTP}, {"PUT ", ProtoHTTP}, {"HEAD", ProtoHTTP}, {"DELE", ProtoHTTP},
	{"PATC", ProtoHTTP}, {"OPTI", ProtoHTTP}, {"CONN", ProtoHTTP}, {"TRAC", ProtoHTTP},
}

// sniff peeks at a plaintext or decrypted stream: an HTTP/1 request line
// or the HTTP/2 preface means HTTP, anything else is opaque TCP. It reads
// only as far as it must: a first byte no HTTP request starts with
// decides at once, so a client that sends a few bytes and waits for the
// answer is not held up.
func (p *Proxy) sniff(pc *peekedConn) Protocol {
	for n := 1; n <= len("PRI * HT"); n++ {
		b, err := pc.r.Peek(n)
		possible := false
		for _, s := range sniffPrefixes {
			if len(b) >= len(s.prefix) && strings.HasPrefix(string(b), s.prefix) {
				return s.proto
			}
			if strings.HasPrefix(s.prefix, string(b)) {
				possible = true
			}
		}
		if !possible || err != nil {
			return ProtoTCP
		}
	}
	return ProtoTCP
}

// reset closes c with a TCP RST, as Envoy does for a refused connection.
func reset(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) inboundServer(in InboundPort) *http.Server {
	tr := appTransport(in)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = in.App
			pr.Out.Host = pr.In.Host
			// The query goes on as authorization saw it, as Envoy forwards
			// it; ReverseProxy would drop parameters it cannot parse.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			// Envoy's sidecar inbound (use_remote_address false) passes
			// the X-Forwarded-* headers a gateway set on to the app;
			// ReverseProxy would drop them.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport: tr,
		// FlushInterval 0: a response with a Content-Length goes out in
		// one write when the handler returns; ReverseProxy still flushes
		// every write of a streaming response (no Content-Length, as gRPC
		// and chunked answers, or text/event-stream).
		BufferPool:   copyBuffers,
		ErrorHandler: upstreamError,
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:   p.inboundHandler(in, rp),
		Protocols: protos,
		ErrorLog:  nil,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			switch v := c.(type) {
			case *infoConn:
				return context.WithValue(ctx, connInfoKey{}, v.info)
			case *tls.Conn:
				// Verified by the handshake; worked out once per connection.
				st := v.ConnectionState()
				var id spiffeid.ID
				if len(st.PeerCertificates) > 0 && len(st.PeerCertificates[0].URIs) == 1 {
					id, _ = spiffeid.FromURI(st.PeerCertificates[0].URIs[0])
				}
				return context.WithValue(ctx, connInfoKey{}, newConnInfo(v.RemoteAddr(), id, &st))
			}
			return ctx
		},
	}
	p.applyLimits(srv)
	return srv
}

func appTransport(in InboundPort) http.RoundTripper {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	if in.Protocol == ProtoHTTP2 {
		protos := new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
		tr.Protocols = protos
		return tr
	}
	return newHTTP1Transport(in.App, d, tr)
}

func upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if idledOut(r) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusRequestTimeout)
		io.WriteString(w, "stream timeout") //nolint:errcheck
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "upstream connect error or disconnect/reset before headers. reset reason: connection failure") //nolint:errcheck
}

// infoConn carries what the sidecar learned of a connection to the HTTP
// server. It wraps a *tls.Conn only for plaintext; TLS connections are
// handed over as they are, so net/http can negotiate HTTP/2.
type infoConn struct {
	net.Conn
	info connInfo
}

// forwardTCP checks a TCP connection against policy and splices it to
// the app.
func (p *Proxy) forwardTCP(c net.Conn, in InboundPort, ci connInfo) {
	defer c.Close()
	start := time.Now()
	rec := &Record{Start: start, Protocol: telemetry.ProtocolTCP, Direction: telemetry.Inbound, MTLS: ci.mtls, DownstreamRemote: ci.remoteStr, UpstreamHost: in.App, DestinationPort: in.Port}
	p.fillInbound(rec, &ci)
	if !p.authorizeTCP(c, in, &ci, rec) {
		rec.Duration = time.Since(start)
		p.observe(rec)
		return
	}
	up, err := dialApp(in)
	if err != nil {
		rec.ResponseFlags = "UF"
		rec.Duration = time.Since(start)
		p.observe(rec)
		return
	}
	defer up.Close()
	p.tel.observeOpen(rec)
	rec.BytesReceived, rec.BytesSent = splice(c, up)
	rec.Duration = time.Since(start)
	p.observe(rec)
}

// selfID is the proxy's own SPIFFE ID, as a string. It is worked out
// once per trust domain, which only a config push can change.
func (p *Proxy) selfID() string {
	c := p.store.Current()
	if c == nil || p.opts.Self.ServiceAccount == "" {
		return ""
	}
	if s := p.self.Load(); s != nil && s.td == c.TrustDomain {
		return s.id
	}
	id, err := spiffeid.FromSegments(c.TrustDomain, "ns", p.opts.Self.Ref.Namespace, "sa", p.opts.Self.ServiceAccount)
	if err != nil {
		return ""
	}
	p.self.Store(&selfID{td: c.TrustDomain, id: id.String()})
	return id.String()
}

// selfID is the proxy's SPIFFE ID in one trust domain.
type selfID struct {
	td spiffeid.TrustDomain
	id string
}

// destinationService is the inbound record's destination_service, the
// workload's first service as a cluster-local host.
func destinationService(ref config.WorkloadRef) string {
	if len(ref.Services) == 0 {
		return ""
	}
	return ref.Services[0] + "." + ref.Namespace + ".svc.cluster.local"
}

func (p *Proxy) fillInbound(rec *Record, ci *connInfo) {
	ref := p.opts.Self.Ref
	rec.DestinationNamespace, rec.DestinationWorkload = ref.Namespace, ref.Name
	rec.DestinationService = p.destService
	rec.DestinationPrincipal = p.selfID()
	if ci.mtls {
		rec.SourcePrincipal, rec.SourceNamespace = ci.peerStr, ci.peerNS
	}
}

func nsSA(id spiffeid.ID) (ns, sa string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) == 4 && parts[0] == "ns" && parts[2] == "sa" {
		return parts[1], parts[3], true
	}
	return "", "", false
}

// splice copies both ways until both sides are done, half-closing as
// each direction ends, and returns bytes received from and sent to c.
func splice(c, up net.Conn) (received, sent int64) {
	done := make(chan int64, 1)
	go func() {
		n, _ := pump(up, c)
		closeWrite(up)
		done <- n
	}()
	sent, _ = pump(c, up)
	closeWrite(c)
	received = <-done
	return received, sent
}

// waitBufferSize is the buffer a direction of a splice waits on: it
// holds a typical request or response whole.
const waitBufferSize = 2 << 10

// pump copies src to dst until src ends, as io.Copy does, and returns
// the bytes written. Spliced connections sit idle most of the time, so
// pump holds as little as it can while it waits: from a plain socket it
// waits with no buffer at all and borrows a pooled 32 KiB one when data
// comes (readPooled); from anything else (TLS) it waits in a small buffer
// of its own and borrows the big one once a read fills the small one.
// It keeps the big buffer until a read returns what the small one would
// have held: a read from a TLS connection returns at most one record, and
// a socket read of a busy stream often comes up short, so a read short of
// the big buffer does not mean the stream went quiet.
// Between two plain TCP sockets it leaves the copy to io.Copy, which
// splices in the kernel.
func pump(dst io.Writer, src io.Reader) (int64, error) {
	_, dstTCP := dst.(*net.TCPConn)
	_, srcTCP := src.(*net.TCPConn)
	if dstTCP && srcTCP {
		return io.Copy(dst, src)
	}
	var small []byte
	var big *[spliceBufferSize]byte
	defer func() {
		if big != nil {
			spliceBuffers.Put(big)
		}
	}()
	var written int64
	var pooled *pooledReader // once src is a plain socket
	for {
		var buf []byte
		var n int
		var rerr error
		if pooled == nil {
			if rc, ok := plainSocket(src); ok {
				pooled, small = newPooledReader(rc), nil
			}
		}
		switch {
		case big != nil:
			buf = big[:]
			n, rerr = src.Read(buf)
		case pooled != nil:
			big, n, rerr = pooled.read()
			if big != nil {
				buf = big[:]
			}
		default:
			if small == nil {
				small = make([]byte, waitBufferSize)
			}
			buf = small
			n, rerr = src.Read(buf)
		}
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
			if w != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return written, nil
			}
			return written, rerr
		}
		switch {
		case big == nil && n == len(small):
			big = spliceBuffers.Get().(*[spliceBufferSize]byte)
		case big != nil && n < waitBufferSize:
			spliceBuffers.Put(big)
			big = nil
		}
	}
}

func closeWrite(c net.Conn) {
	type cw interface{ CloseWrite() error }
	if x, ok := c.(cw); ok {
		_ = x.CloseWrite()
		return
	}
	if pc, ok := c.(*peekedConn); ok {
		closeWrite(pc.Conn)
		return
	}
	c.Close()
}
