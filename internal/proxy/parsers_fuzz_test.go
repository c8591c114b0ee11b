package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// recordedHello is the first flight of a real crypto/tls client.
func recordedHello(t testing.TB, alpn []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	c := tls.Client(&captureConn{w: &buf}, &tls.Config{ServerName: "productcatalog", NextProtos: alpn, InsecureSkipVerify: true}) //nolint:gosec // never completes
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_ = c.Handshake() // fails once the hello is written
	return buf.Bytes()
}

type captureConn struct {
	net.Conn
	w io.Writer
}

func (c *captureConn) Write(b []byte) (int, error)      { return c.w.Write(b) }
func (c *captureConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *captureConn) Close() error                     { return nil }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzPeekClientHello reads whatever a client sends first as a TLS
// ClientHello: it never consumes a byte of it, and an ALPN it reports
// came from a hello that parses.
func FuzzPeekClientHello(f *testing.F) {
	f.Add(recordedHello(f, []string{"h2", "http/1.1", meshALPN}))
	f.Add(recordedHello(f, nil))
	f.Add([]byte("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		peekClientHello(br)
		rest, _ := io.ReadAll(br)
		if !bytes.Equal(rest, b) {
			t.Fatalf("peeking consumed the stream: %d bytes left of %d", len(rest), len(b))
		}
	})
}

// FuzzH1Guard feeds a downstream byte stream to the HTTP/1.1 guard
// whole and one byte at a time: how the stream is cut into reads never
// changes whether it is refused, nor why.
func FuzzH1Guard(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
		"\r\n\r\nGET / HTTP/1.1\r\nX: " + string(bytes.Repeat([]byte("a"), 300)) + "\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		whole := &h1Guard{first: true, maxHeader: 1 << 10}
		bytewise := &h1Guard{first: true, maxHeader: 1 << 10}
		r1 := whole.scan(b)
		var r2 *guardRefusal
		for i := range b {
			if r2 = bytewise.scan(b[i : i+1]); r2 != nil {
				break
			}
		}
		if r1 != r2 {
			t.Fatalf("whole: %v, byte by byte: %v", r1, r2)
		}
	})
}
