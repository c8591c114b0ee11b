package proxy

import (
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/authz"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/telemetry"
	"palisade.dev/palisade/internal/xfcc"
)

// denyBody is Envoy's answer to a request that authorization refused.
const denyBody = "RBAC: access denied"

func connInfoOf(r *http.Request) connInfo {
	if ci, ok := r.Context().Value(connInfoKey{}).(connInfo); ok {
		return ci
	}
	// Not from the inbound listener: worked out for this request.
	var id spiffeid.ID
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) == 1 {
		// The handshake verified the chain against the bundle.
		id, _ = spiffeid.FromURI(r.TLS.PeerCertificates[0].URIs[0])
	}
	return newConnInfo(addrOf(r.RemoteAddr), id, r.TLS)
}

func (p *Proxy) inboundHandler(in InboundPort, rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ci := connInfoOf(r)
		cfg := p.store.Current()
		rec := &Record{
			Start: start, Protocol: protoName(r), HTTPVersion: r.Proto, Direction: telemetry.Inbound, MTLS: ci.mtls, ForwardedFor: r.Header.Get("X-Forwarded-For"),
			Method: r.Method, Authority: r.Host, UserAgent: r.UserAgent(), RequestID: r.Header.Get("X-Request-Id"),
			DownstreamRemote: ci.remoteStr, UpstreamHost: in.App, DestinationPort: in.Port,
		}
		p.fillInbound(rec, &ci)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			rec.ResponseCode = sw.code()
			rec.GRPCStatus = grpcStatus(rec.Protocol, sw.Header())
			rec.BytesSent = sw.n
			rec.Duration = time.Since(start)
			p.observe(rec)
		}()

		path, ok := p.normalizeRequest(sw, r, cfg, rec)
		if !ok || p.tooManyHeaders(sw, r) {
			return
		}

		areq := p.authzRequest(r, in.Port, &ci, path)
		if !p.admit(sw, r, cfg, areq, rec) {
			return
		}

		// APPEND_FORWARD, as Istio's sidecar inbound: the caller's element
		// is appended on mTLS; without a client certificate the header is
		// removed, so a plaintext client cannot forge one.
		p.setXFCC(r, &ci)
		if r.Body != nil {
			cr := &countReader{r: r.Body}
			r.Body = cr
			defer func() { rec.BytesReceived = cr.n }()
		}
		iw, ir, stop := p.watchStream(sw, r)
		defer stop()
		rp.ServeHTTP(iw, ir)
		if idledOut(ir) {
			rec.ResponseFlags = "SI"
		}
	})
}

// admit runs request authentication, then authorization, answering a
// refused request itself; it reports whether the request may go on.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, cfg *Compiled, areq *authz.Request, rec *Record) bool {
	if cfg.JWT != nil {
		res, err := cfg.JWT.Authenticate(r)
		if err != nil {
			rec.Decision, rec.AuthError = "JWT-DENY", err.Error()
			p.log.Info("request authentication failed", "port", areq.DestinationPort, "source", rec.SourcePrincipal, "reason", err.Error())
			var je *jwt.Error
			if errors.As(err, &je) {
				je.ServeHTTP(w, r)
			} else {
				http.Error(w, "Jwt verification fails", http.StatusUnauthorized)
			}
			return false
		}
		if res != nil {
			areq.Auth = &authz.AuthInfo{Principal: res.Principal, Audiences: res.Audiences, Presenter: res.Presenter, Claims: res.Claims}
			rec.RequestPrincipal = res.Principal
		}
	}
	if !p.authorizeHTTP(w, r, cfg, areq, rec) {
		return false
	}
	if p.log.Enabled(r.Context(), slog.LevelDebug) {
		// As Envoy's jwt_authn and RBAC filters log at debug level: the
		// request principal, never the token.
		var principal string
		if areq.Auth != nil {
			principal = areq.Auth.Principal
		}
		p.log.Debug("request admitted", "decision", rec.Decision, "policy", rec.Policy, "method", areq.Method, "path", areq.Path,
			"source", rec.SourcePrincipal, "requestPrincipal", principal)
	}
	return true
}

// authorizeHTTP runs CUSTOM, then DENY and ALLOW, and answers the denial
// itself; it reports whether the request may go on.
func (p *Proxy) authorizeHTTP(w http.ResponseWriter, r *http.Request, cfg *Compiled, areq *authz.Request, rec *Record) bool {
	if cfg.Authz == nil {
		return true
	}
	if provider, ref, ok := cfg.Authz.Custom(areq); ok {
		rec.Policy = ref.String() + " provider " + provider
		if !p.checkCustom(w, r, cfg, provider, rec) {
			rec.Decision = "CUSTOM-DENY"
			if rec.ResponseFlags == "" {
				rec.ResponseFlags = "UAEX" // Envoy's flag for a request the external authorizer refused
			}
			return false
		}
		rec.Decision = "CUSTOM-ALLOW"
	}
	d := cfg.Authz.Evaluate(areq)
	if d.Policy.Name != "" {
		rec.Policy = d.Policy.String()
	}
	if d.Audited {
		p.log.Info("request audited", "policy", d.Audit.String(), "path", areq.Path, "source", rec.SourcePrincipal)
	}
	defer func() {
		// AUDIT marks the entry; it never decides.
		if d.Audited {
			rec.Decision += "+AUDIT"
			rec.Policy = strings.TrimPrefix(rec.Policy+"; "+d.Audit.String(), "; ")
		}
	}()
	if !d.Allowed {
		rec.Decision = "DENY"
		p.log.Info("request denied", "reason", d.Reason, "policy", d.Policy.String(), "method", areq.Method, "path", areq.Path, "source", rec.SourcePrincipal)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, denyBody) //nolint:errcheck
		return false
	}
	if rec.Decision == "" {
		rec.Decision = "ALLOW"
	}
	return true
}

// authorizeTCP applies DENY and ALLOW to a TCP connection; a denied
// connection is closed.
func (p *Proxy) authorizeTCP(c net.Conn, in InboundPort, ci *connInfo, rec *Record) bool {
	cfg := p.store.Current()
	if cfg.Authz == nil {
		return true
	}
	areq := &authz.Request{DestinationPort: in.Port, SourceIP: ci.sourceIP, DestinationIP: ipOf(c.LocalAddr())}
	areq.RemoteIP = areq.SourceIP
	if ci.mtls {
		areq.Principal = ci.principal
		areq.SNI = ci.peer.ServerName
	}
	if _, ref, ok := cfg.Authz.Custom(areq); ok {
		// ext_authz for TCP is not offered: a CUSTOM policy that selects
		// a TCP connection denies it, failing closed.
		rec.Decision, rec.Policy = "CUSTOM-DENY", ref.String()
		return false
	}
	d := cfg.Authz.Evaluate(areq)
	rec.Policy = d.Policy.String()
	if !d.Allowed {
		rec.Decision = "DENY"
		p.log.Info("connection denied", "reason", d.Reason, "policy", d.Policy.String(), "source", rec.SourcePrincipal)
		return false
	}
	rec.Decision = "ALLOW"
	return true
}

func (p *Proxy) authzRequest(r *http.Request, port uint32, ci *connInfo, path string) *authz.Request {
	areq := &authz.Request{
		SourceIP:        ci.sourceIP,
		DestinationPort: port,
		IsHTTP:          true,
		Host:            r.Host,
		Method:          r.Method,
		Path:            path,
		Headers:         r.Header,
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		areq.DestinationIP = ipOf(a)
	}
	areq.RemoteIP = areq.SourceIP
	if ci.mtls {
		areq.Principal = ci.principal
		areq.SNI = ci.peer.ServerName
	}
	return areq
}

// setRequestURI points r at the normalized target uri and returns the
// target the app will receive: uri in the spelling net/http writes on
// the wire, which escapes a few bytes uri may hold as they came (such as
// '|' or '"'). Authorization sees that same string.
func setRequestURI(r *http.Request, uri string) (string, error) {
	if uri == r.RequestURI && !strings.Contains(uri, "/.") && r.URL.RawPath == "" {
		// Normalization changed nothing: r.URL was parsed from this very
		// origin-form target, with no dot segments to resolve again, and
		// net/http writes its path as it came (no RawPath of its own).
		return uri, nil
	}
	u, err := r.URL.Parse(uri)
	if err != nil {
		return "", err
	}
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.ForceQuery = u.Path, u.RawPath, u.RawQuery, u.ForceQuery
	r.RequestURI = uri
	return r.URL.RequestURI(), nil
}

// grpcStatus is a gRPC response's status code for grpc_response_status:
// from the trailers once the body is done (the reverse proxy copies them
// into the header map, under http.TrailerPrefix when undeclared), or
// from the headers of a trailers-only response.
func grpcStatus(protocol string, h http.Header) string {
	if protocol != telemetry.ProtocolGRPC {
		return ""
	}
	if v := h.Get("Grpc-Status"); v != "" {
		return v
	}
	return h.Get(http.TrailerPrefix + "Grpc-Status")
}

func protoName(r *http.Request) string {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return telemetry.ProtocolGRPC
	}
	return telemetry.ProtocolHTTP
}

// setXFCC applies forward_client_cert_details APPEND_FORWARD with the
// details Istio's sidecar sets (Subject, URI, DNS).
func (p *Proxy) setXFCC(r *http.Request, ci *connInfo) {
	incoming := strings.Join(r.Header.Values("X-Forwarded-Client-Cert"), ",")
	current := ""
	hasCert := ci.mtls && ci.peer != nil && len(ci.peer.PeerCertificates) > 0
	if hasCert {
		build := func() string {
			var local *x509.Certificate
			if cert, err := p.certs.GetCertificate(nil); err == nil && cert != nil {
				local = cert.Leaf
			}
			return xfcc.Current(local, ci.peer.PeerCertificates, xfcc.IstioSidecar)
		}
		if ci.xfcc != nil {
			ci.xfcc.once.Do(func() { ci.xfcc.value = build() })
			current = ci.xfcc.value
		} else {
			current = build()
		}
	}
	v, keep := xfcc.Forward(xfcc.AppendForward, incoming, hasCert, current)
	if keep {
		r.Header.Set("X-Forwarded-Client-Cert", v)
	} else {
		r.Header.Del("X-Forwarded-Client-Cert")
	}
}

func ipOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case nil:
		return netip.Addr{}
	case *net.TCPAddr:
		return v.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

type strAddr string

func (s strAddr) Network() string { return "tcp" }
func (s strAddr) String() string  { return string(s) }

func addrOf(s string) net.Addr { return strAddr(s) }

type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

type countReader struct {
	r io.ReadCloser
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (c *countReader) Close() error { return c.r.Close() }
