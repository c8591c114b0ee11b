package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"palisade.dev/palisade/internal/telemetry"
)

// errFraming ends a connection whose HTTP/1.1 framing the guard refused.
var errFraming = errors.New("proxy: HTTP/1.1 framing refused")

// h1Guard reads an HTTP/1.1 stream ahead of net/http and refuses what
// net/http would accept but Envoy's codec refuses, because two parsers
// could read it two ways:
//
//   - Transfer-Encoding together with Content-Length (request
//     smuggling, RFC 9112 section 6.1; Envoy's allow_chunked_length is
//     false by default): net/http drops the Content-Length and reads
//     chunks;
//   - obsolete line folding (a header line that starts with a space or
//     a tab, RFC 9112 section 5.2): net/http joins it to the line above.
//
// It also bounds a header block's size (431) and the time it takes to
// arrive once begun (408), and counts each refusal in the metrics.
//
// The refused request gets its answer and the connection is closed; its
// header block never reaches net/http. To find each request's header block the
// guard follows the framing of the bodies (Content-Length, chunked). An
// upgrade or CONNECT ends the guarding: what follows is no longer
// HTTP/1.1 requests, or net/http ends the connection. After an HTTP/2
// preface the guard only times header blocks (h2watch.go).
type h1Guard struct {
	net.Conn
	log       *slog.Logger
	tel       *Telemetry
	maxHeader int           // bytes a header block may take (431 past it)
	timeout   time.Duration // for a whole header block once it began (408)

	mu      sync.Mutex
	timer   *time.Timer
	refused bool // an answer was sent and the connection closed
	hdr     int  // bytes of the current header block so far
	state   guardState
	start   int    // bytes seen of the stream, up to the h2 preface's length
	line    []byte // the current line, at most maxGuardLine bytes of it
	lineLen int    // the current line's whole length
	first   bool   // the next header line is the request line
	cl, te  bool   // the block so far has Content-Length, Transfer-Encoding
	chunked bool   // its Transfer-Encoding ends in chunked
	upgrade bool   // CONNECT or an Upgrade header
	remain  int64  // body or chunk bytes still to come
	h2      h2Frames
}

type guardState int

const (
	guardHeaders   guardState = iota // in a header block
	guardBody                        // remain bytes of a Content-Length body
	guardChunkSize                   // a chunk-size line
	guardChunkData                   // remain bytes of chunk data, then CRLF
	guardTrailers                    // trailer lines after the last chunk
	guardOff                         // no longer HTTP/1.1 requests
	guardH2                          // HTTP/2 frames, after the preface
)

// maxGuardLine is how much of a header line the guard keeps: enough for
// the names and values it looks at.
const maxGuardLine = 256

// guardRefusal is why the guard refused a request, with its answer.
type guardRefusal struct {
	reason, limit string
	status        int
}

var (
	refuseSmuggling = &guardRefusal{"Transfer-Encoding with Content-Length", telemetry.LimitFraming, http.StatusBadRequest}
	refuseFolding   = &guardRefusal{"obsolete line folding", telemetry.LimitFraming, http.StatusBadRequest}
	refuseChunk     = &guardRefusal{"malformed chunk size", telemetry.LimitFraming, http.StatusBadRequest}
	refuseSize      = &guardRefusal{"request headers too large", telemetry.LimitHeaderSize, http.StatusRequestHeaderFieldsTooLarge}
	refuseTimeout   = &guardRefusal{"request headers timeout", telemetry.LimitHeaderTimeout, http.StatusRequestTimeout}
)

func (p *Proxy) newH1Guard(c net.Conn) *h1Guard {
	return &h1Guard{Conn: c, log: p.log, tel: p.tel, first: true,
		maxHeader: p.opts.Limits.MaxRequestHeadersKB << 10, timeout: p.opts.Limits.RequestHeadersTimeout}
}

func (g *h1Guard) Read(b []byte) (int, error) {
	n, err := g.Conn.Read(b)
	if n > 0 {
		g.mu.Lock()
		why := g.scan(b[:n])
		if why != nil {
			g.refuseLocked(why)
		}
		refused := g.refused
		g.mu.Unlock()
		if refused {
			return 0, errFraming
		}
	}
	return n, err
}

// refuseLocked answers why and closes the connection, once.
func (g *h1Guard) refuseLocked(why *guardRefusal) {
	if g.refused {
		return
	}
	g.refused = true
	if g.timer != nil {
		g.timer.Stop()
	}
	g.tel.exceeded(why.limit)
	if g.state == guardH2 {
		// net/http's HTTP/2 server owns the stream and its header
		// compression: the connection is closed without an answer.
		g.log.Info("connection closed", "reason", why.reason, "protocol", "HTTP/2", "remote", g.RemoteAddr())
		g.Conn.Close()
		return
	}
	g.log.Info("request refused", "reason", why.reason, "status", why.status, "remote", g.RemoteAddr())
	text := http.StatusText(why.status)
	_, _ = fmt.Fprintf(g.Conn, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", why.status, text, len(text), text)
	g.Conn.Close()
}

// headerBytes counts n more bytes of the current header block, timing
// the block from its first byte.
func (g *h1Guard) headerBytes(n int) *guardRefusal {
	if g.hdr == 0 {
		g.startClock()
	}
	g.hdr += n
	if g.hdr > g.maxHeader {
		return refuseSize
	}
	return nil
}

// startClock times a header block from now.
func (g *h1Guard) startClock() {
	if g.timeout <= 0 {
		return
	}
	if g.timer != nil {
		g.timer.Reset(g.timeout)
		return
	}
	g.timer = time.AfterFunc(g.timeout, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.hdr > 0 && g.state == guardHeaders || g.h2.inBlock && g.state == guardH2 {
			g.refuseLocked(refuseTimeout)
		}
	})
}

// endHeaders ends the current header block's count and clock.
func (g *h1Guard) endHeaders() {
	g.hdr = 0
	if g.timer != nil {
		g.timer.Stop()
	}
}

// Close stops the header clock with the connection.
func (g *h1Guard) Close() error {
	g.mu.Lock()
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	return g.Conn.Close()
}

// scan follows b through the stream; it returns why the stream is
// refused, or nil.
func (g *h1Guard) scan(b []byte) *guardRefusal {
	const preface = "PRI * HTTP/2.0\r\n"
	for len(b) > 0 {
		if g.start < len(preface) {
			k := min(len(b), len(preface)-g.start)
			if !bytes.Equal(b[:k], []byte(preface[g.start:g.start+k])) {
				g.start = len(preface) // not HTTP/2
			} else if g.start += k; g.start == len(preface) {
				g.state = guardH2
				g.h2.skip = len(h2PrefaceRest)
				b = b[k:]
			}
		}
		switch g.state {
		case guardOff:
			return nil
		case guardH2:
			g.scanH2(b)
			return nil
		case guardBody, guardChunkData:
			k := int64(len(b))
			if k > g.remain {
				k = g.remain
			}
			g.remain -= k
			b = b[k:]
			if g.remain == 0 {
				if g.state == guardBody {
					g.state, g.first = guardHeaders, true
				} else {
					g.state = guardChunkSize // the CRLF after the data reads as an empty size line
				}
			}
			continue
		}
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if g.state == guardHeaders {
			n := len(chunk)
			if i >= 0 {
				n++
			}
			if why := g.headerBytes(n); why != nil {
				return why
			}
		}
		if room := maxGuardLine - len(g.line); room > 0 {
			g.line = append(g.line, chunk[:min(room, len(chunk))]...)
		}
		g.lineLen += len(chunk)
		if i < 0 {
			return nil
		}
		b = b[i+1:]
		line := bytes.TrimSuffix(g.line, []byte("\r"))
		empty := g.lineLen <= 1 && len(line) == 0
		if why := g.endLine(line, empty); why != nil {
			return why
		}
		g.line, g.lineLen = g.line[:0], 0
	}
	return nil
}

// endLine takes one whole line (without CRLF; only its first
// maxGuardLine bytes).
func (g *h1Guard) endLine(line []byte, empty bool) *guardRefusal {
	switch g.state {
	case guardChunkSize:
		if empty {
			return nil // the CRLF that ends chunk data
		}
		size, ok := chunkSize(line)
		if !ok {
			return refuseChunk
		}
		if size == 0 {
			g.state = guardTrailers
			return nil
		}
		g.state, g.remain = guardChunkData, size
		return nil
	case guardTrailers:
		if empty {
			g.state, g.first = guardHeaders, true
		}
		return nil
	}
	switch {
	case g.first && empty:
		g.endHeaders()
		return nil // empty lines before a request line are ignored
	case g.first:
		g.first = false
		g.cl, g.te, g.chunked, g.upgrade = false, false, false, bytes.HasPrefix(line, []byte("CONNECT "))
		return nil
	case !empty && (line[0] == ' ' || line[0] == '\t'):
		return refuseFolding
	case !empty:
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			g.cl = true
			if n, ok := decimal(value); ok {
				g.remain = n
			} else {
				g.state = guardOff // net/http answers 400 and closes
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			g.te = true
			codings := bytes.Split(value, []byte(","))
			g.chunked = bytes.EqualFold(bytes.TrimSpace(codings[len(codings)-1]), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Upgrade")):
			g.upgrade = true
		}
		return nil
	}
	// The end of a header block.
	g.endHeaders()
	switch {
	case g.cl && g.te:
		return refuseSmuggling
	case g.upgrade, g.te && !g.chunked, g.state == guardOff:
		// A tunnel follows, or net/http refuses the request and
		// closes: nothing more to guard.
		g.state = guardOff
	case g.te:
		g.state = guardChunkSize
	case g.cl && g.remain > 0:
		g.state = guardBody
	default:
		g.first = true
	}
	return nil
}

func chunkSize(line []byte) (int64, bool) {
	line, _, _ = bytes.Cut(line, []byte(";"))
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func decimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
