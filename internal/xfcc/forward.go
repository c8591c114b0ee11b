package xfcc

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// Mode is Envoy's forward_client_cert_details: what a proxy does with the
// header of a request it forwards.
type Mode int

// The modes, named as Envoy and Istio's
// gatewayTopology.forwardClientCertDetails name them.
const (
	// Sanitize removes the header. Envoy's default.
	Sanitize Mode = iota
	// ForwardOnly forwards the header as it came, on mTLS connections.
	ForwardOnly
	// AppendForward appends the current client's element, on mTLS
	// connections. Istio's sidecar inbound listener uses it.
	AppendForward
	// SanitizeSet replaces the header with the current client's element, on
	// mTLS connections. Istio's gateways default to it.
	SanitizeSet
	// AlwaysForwardOnly forwards the header as it came, even without mTLS.
	AlwaysForwardOnly
)

var modeNames = [...]string{"SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD", "SANITIZE_SET", "ALWAYS_FORWARD_ONLY"}

func (m Mode) String() string {
	if m < 0 || int(m) >= len(modeNames) {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return modeNames[m]
}

// ParseMode reads a mode by its Envoy/Istio name (SANITIZE_SET, ...).
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("xfcc: parse mode: unknown forward_client_cert_details %q", s)
}

// Forward returns the header value to send on with a request, following
// Envoy: incoming is the header as received (several received lines joined
// with ","), clientCert reports whether the downstream connection presented
// a client certificate, and current is the encoded element for it (see
// Current). keep is false when the header must be removed.
func Forward(m Mode, incoming string, clientCert bool, current string) (value string, keep bool) {
	if m == AlwaysForwardOnly {
		return incoming, incoming != ""
	}
	if m == Sanitize || !clientCert {
		return "", false
	}
	switch m {
	case ForwardOnly:
		return incoming, incoming != ""
	case AppendForward:
		if incoming == "" {
			return current, true
		}
		return incoming + "," + current, true
	case SanitizeSet:
		return current, true
	}
	return "", false // unknown mode: fail closed
}

// NewElement describes the client certificate peerChain[0] (leaf first, as
// in tls.ConnectionState.PeerCertificates) as seen by a proxy whose own
// certificate is local, with the details d selects. local may be nil (no By).
func NewElement(local *x509.Certificate, peerChain []*x509.Certificate, d Details) Element {
	var e Element
	if local != nil {
		for _, u := range local.URIs {
			e.By = append(e.By, u.String())
		}
	}
	if len(peerChain) == 0 || peerChain[0] == nil {
		return e
	}
	leaf := peerChain[0]
	sum := sha256.Sum256(leaf.Raw)
	e.Hash = hex.EncodeToString(sum[:])
	if d.Cert {
		e.Cert = urlEncodedPEM(peerChain[:1])
	}
	if d.Chain {
		e.Chain = urlEncodedPEM(peerChain)
	}
	if d.Subject {
		e.Subject = leaf.Subject.String()
	}
	if d.URI {
		for _, u := range leaf.URIs {
			e.URI = append(e.URI, u.String())
		}
	}
	if d.DNS {
		e.DNS = append(e.DNS, leaf.DNSNames...)
	}
	return e
}

// Current returns the encoded element for the client certificate, ready for
// Forward. A proxy computes it once per connection.
func Current(local *x509.Certificate, peerChain []*x509.Certificate, d Details) string {
	e := NewElement(local, peerChain, d)
	return string(e.AppendTo(nil, d))
}

// urlEncodedPEM is the PEM of certs, percent-encoded as Envoy sends Cert and
// Chain: every byte but unreserved characters (RFC 3986) is escaped.
func urlEncodedPEM(certs []*x509.Certificate) string {
	var p []byte
	for _, c := range certs {
		p = append(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(p)*11/10)
	for _, c := range p {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			out = append(out, c)
			continue
		}
		out = append(out, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(out)
}
