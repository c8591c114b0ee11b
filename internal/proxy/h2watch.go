package proxy

// h2PrefaceRest is the HTTP/2 client preface after its first line,
// which the guard matches as it would a request line.
const h2PrefaceRest = "\r\nSM\r\n\r\n"

// HTTP/2 frame types and the flag the guard looks at (RFC 9113 6).
const (
	h2FrameHeaders      = 0x1
	h2FrameContinuation = 0x9
	h2FlagEndHeaders    = 0x4
)

// h2Frames follows the frames of an HTTP/2 stream far enough to time
// each header block, from its HEADERS frame's first byte to the end of
// the frame that carries END_HEADERS: Envoy's request_headers_timeout,
// for a client that begins a header block and never ends it (net/http
// would wait for it until the connection's idle timeout, an hour). Only
// frame headers are read; header blocks are decoded by net/http.
type h2Frames struct {
	skip    int     // bytes of the preface still to come
	hdr     [9]byte // the frame header being read
	n       int     // bytes of hdr read
	remain  int     // payload bytes of the current frame still to come
	ends    bool    // the current frame ends a header block
	inBlock bool    // a header block began and has not ended
}

// scanH2 follows b through the frames, starting and stopping the
// header clock.
func (g *h1Guard) scanH2(b []byte) {
	f := &g.h2
	for len(b) > 0 {
		switch {
		case f.skip > 0:
			k := min(f.skip, len(b))
			f.skip -= k
			b = b[k:]
		case f.remain > 0:
			k := min(f.remain, len(b))
			f.remain -= k
			b = b[k:]
			if f.remain == 0 {
				g.endH2Frame()
			}
		default:
			k := copy(f.hdr[f.n:], b)
			f.n += k
			b = b[k:]
			if f.n < len(f.hdr) {
				return
			}
			f.n = 0
			f.remain = int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
			typ, flags := f.hdr[3], f.hdr[4]
			f.ends = false
			if typ == h2FrameHeaders || typ == h2FrameContinuation && f.inBlock {
				if !f.inBlock {
					f.inBlock = true
					g.startClock()
				}
				f.ends = flags&h2FlagEndHeaders != 0
			}
			if f.remain == 0 {
				g.endH2Frame()
			}
		}
	}
}

// endH2Frame is called once a frame's payload has been read whole.
func (g *h1Guard) endH2Frame() {
	if g.h2.ends {
		g.h2.inBlock, g.h2.ends = false, false
		if g.timer != nil {
			g.timer.Stop()
		}
	}
}
