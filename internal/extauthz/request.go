package extauthz

import (
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// partialBodyHeader tells the authorizer whether the body it got is cut.
const partialBodyHeader = "x-envoy-auth-partial-body"

// buildCheckRequest fills a CheckRequest the way Envoy's ext_authz HTTP filter
// does (CheckRequestUtils::createHttpCheck), for the settings Istio generates:
// all headers, no peer certificate, no TLS session.
func buildCheckRequest(cfg *config, in *CheckInput, now func() time.Time) *authv3.CheckRequest {
	t := in.RequestTime
	if t.IsZero() {
		t = now()
	}
	id := in.RequestID
	if id == "" {
		id = randomStreamID()
	}
	// Proto strings must be valid UTF-8; Envoy sanitizes the same way.
	httpReq := &authv3.AttributeContext_HttpRequest{
		Id:       id,
		Method:   utf8(in.Method),
		Path:     utf8(in.Path),
		Host:     utf8(in.Host),
		Scheme:   utf8(in.Scheme),
		Size:     in.Size,
		Protocol: utf8(in.Protocol),
		Headers:  headerMap(in),
	}
	if b := cfg.body; b != nil && in.Body != nil {
		body, partial := in.Body, false
		if len(body) > b.maxBytes {
			body, partial = body[:b.maxBytes], true
		}
		// An HTTP authorizer gets the bytes as they are; packAsBytes only
		// matters on gRPC, where the string field must be valid UTF-8.
		if b.packAsBytes || cfg.kind == kindHTTP {
			httpReq.RawBody = body
		} else {
			httpReq.Body = utf8(string(body))
		}
		httpReq.Headers[partialBodyHeader] = strconv.FormatBool(partial)
	}
	var ext map[string]string
	if len(in.ContextExtensions) > 0 {
		ext = make(map[string]string, len(in.ContextExtensions))
		for k, v := range in.ContextExtensions {
			ext[utf8(k)] = utf8(v)
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      peer(in.SourceAddress, utf8(in.SourcePrincipal)),
		Destination: peer(in.DestinationAddress, utf8(in.DestinationPrincipal)),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(t),
			Http: httpReq,
		},
		ContextExtensions: ext,
	}}
}

// utf8 replaces invalid UTF-8 with '!', as Envoy's sanitizeUtf8String does.
func utf8(s string) string { return strings.ToValidUTF8(s, "!") }

// headerMap is Envoy's view of the request headers: lower-case names, the
// pseudo-headers first, repeated headers joined with ",".
func headerMap(in *CheckInput) map[string]string {
	m := make(map[string]string, len(in.Headers)+4)
	m[":authority"] = utf8(in.Host)
	m[":method"] = utf8(in.Method)
	m[":path"] = utf8(in.Path)
	if in.Scheme != "" {
		m[":scheme"] = utf8(in.Scheme)
	}
	for name, values := range in.Headers {
		k := utf8(strings.ToLower(name))
		// A client must not be able to claim the body is (not) partial, and
		// the pseudo-headers come from the request line.
		if k == partialBodyHeader || strings.HasPrefix(k, ":") || k == "host" {
			continue
		}
		v := utf8(strings.Join(values, ","))
		if prev, ok := m[k]; ok {
			v = prev + "," + v
		}
		m[k] = v
	}
	return m
}

func peer(addr netip.AddrPort, principal string) *authv3.AttributeContext_Peer {
	p := &authv3.AttributeContext_Peer{Principal: principal}
	if addr.IsValid() {
		p.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       addr.Addr().Unmap().String(),
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(addr.Port())},
		}}}
	}
	return p
}

func randomStreamID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:]), 10)
}

// InputFromRequest fills the request part of a CheckInput from an incoming
// request: method, path with query, host, scheme, protocol, headers, size
// (-1 when unknown), source address and, on TLS, the peer's principal (first
// URI SAN). The caller adds the destination, the body and context extensions.
func InputFromRequest(r *http.Request) *CheckInput {
	in := &CheckInput{
		Method:   r.Method,
		Path:     r.URL.RequestURI(),
		Host:     r.Host,
		Scheme:   "http",
		Protocol: ProtocolName(r.ProtoMajor, r.ProtoMinor),
		Headers:  r.Header.Clone(),
		Size:     r.ContentLength,
	}
	if in.Headers == nil {
		in.Headers = http.Header{}
	}
	if r.ContentLength > 0 && in.Headers.Get("Content-Length") == "" {
		in.Headers.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	if r.TLS != nil {
		in.Scheme = "https"
		if certs := r.TLS.PeerCertificates; len(certs) > 0 && len(certs[0].URIs) > 0 {
			in.SourcePrincipal = certs[0].URIs[0].String()
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		in.SourceAddress = ap
	}
	return in
}

// ProtocolName names a request's protocol as Envoy fills
// AttributeContext.HttpRequest.protocol ("HTTP/1.1", "HTTP/2"), not as Go
// does ("HTTP/2.0").
func ProtocolName(major, minor int) string {
	switch {
	case major == 1 && minor == 0:
		return "HTTP/1.0"
	case major == 2:
		return "HTTP/2"
	case major == 3:
		return "HTTP/3"
	default:
		return "HTTP/1.1"
	}
}
