package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"time"
)

// meshALPN is the protocol a sidecar offers, besides the real ones, when
// it opens mesh mTLS, as Istio's sidecars offer "istio" and "istio-*":
// on a PERMISSIVE port it tells a peer sidecar from an app's own TLS
// client, which is passed to the app untouched.
const meshALPN = "istio"

// offersMeshALPN reports whether a ClientHello's protocols mark a mesh
// peer (Palisade's "istio", or Istio's "istio-peer-exchange",
// "istio-http/1.1", "istio-h2", ...).
func offersMeshALPN(protos []string) bool {
	for _, p := range protos {
		if p == meshALPN || strings.HasPrefix(p, meshALPN+"-") {
			return true
		}
	}
	return false
}

var errHelloSeen = errors.New("proxy: client hello read")

// peekClientHello reads the ALPN protocols of the TLS ClientHello at the
// head of br without consuming it. ok is false when the record cannot be
// read whole from the buffer (the caller then treats the connection as
// mesh mTLS, as it would without looking).
func peekClientHello(br *bufio.Reader) (alpn []string, ok bool) {
	alpn, _, ok = peekHello(br)
	return alpn, ok
}

// peekHello reads the ALPN protocols and server name of the TLS
// ClientHello at the head of br without consuming it.
func peekHello(br *bufio.Reader) (alpn []string, sni string, ok bool) {
	hdr, err := br.Peek(5)
	if err != nil || hdr[0] != 0x16 {
		return nil, "", false
	}
	n := 5 + (int(hdr[3])<<8 | int(hdr[4]))
	if n > br.Size() {
		return nil, "", false
	}
	rec, err := br.Peek(n)
	if err != nil {
		return nil, "", false
	}
	var seen bool
	srv := tls.Server(&replayConn{r: bytes.NewReader(rec)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			alpn, sni, seen = append([]string(nil), h.SupportedProtos...), h.ServerName, true
			return nil, errHelloSeen
		},
	})
	_ = srv.Handshake()
	return alpn, sni, seen
}

// replayConn gives crypto/tls a copy of bytes already peeked; what the
// handshake writes back is dropped.
type replayConn struct{ r *bytes.Reader }

func (c *replayConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *replayConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return strAddr("") }
func (c *replayConn) RemoteAddr() net.Addr             { return strAddr("") }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }
