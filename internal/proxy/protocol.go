package proxy

import (
	"net"
	"strconv"
	"strings"
)

// Protocol is how the proxy handles a port, chosen as Istio does from
// the port's protocol or its name's prefix.
type Protocol int

// Protocols.
const (
	ProtoUnknown Protocol = iota // sniffed
	ProtoHTTP                    // HTTP/1.1 (and h2c upgrade)
	ProtoHTTP2                   // HTTP/2 and gRPC
	ProtoTCP                     // opaque bytes
)

func (p Protocol) String() string {
	switch p {
	case ProtoHTTP:
		return "http"
	case ProtoHTTP2:
		return "http2"
	case ProtoTCP:
		return "tcp"
	}
	return "auto"
}

// ProtocolOf follows Istio's protocol selection: the explicit protocol,
// else the port name's prefix before '-', else sniffing.
func ProtocolOf(protocol, name string) Protocol {
	p := strings.ToLower(protocol)
	if p == "" {
		p, _, _ = strings.Cut(strings.ToLower(name), "-")
	}
	switch p {
	case "http":
		return ProtoHTTP
	case "http2", "grpc", "grpc-web":
		return ProtoHTTP2
	case "tcp", "tls", "https", "mongo", "mysql", "redis":
		return ProtoTCP
	}
	return ProtoUnknown
}

func splitHostPort(hp string, def uint32) (string, uint32) {
	if h, p, err := net.SplitHostPort(hp); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err == nil {
			return h, uint32(n)
		}
		return h, def
	}
	return strings.Trim(hp, "[]"), def
}

func joinHostPort(h string, p uint32) string {
	return net.JoinHostPort(h, strconv.FormatUint(uint64(p), 10))
}
