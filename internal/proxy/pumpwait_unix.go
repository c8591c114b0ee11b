//go:build unix

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

// plainSocket returns the raw connection of a source that is a plain TCP
// socket (or a peeked one whose peeked bytes are all read), which pump
// can wait on without a buffer. A drained peeked connection lets its
// peek buffer go, as its Read would.
func plainSocket(r io.Reader) (syscall.RawConn, bool) {
	switch c := r.(type) {
	case *net.TCPConn:
		rc, err := c.SyscallConn()
		return rc, err == nil
	case *peekedConn:
		if c.direct && c.r != nil && c.r.Buffered() == 0 {
			c.r = nil
		}
		if c.direct && c.r == nil {
			return plainSocket(c.Conn)
		}
	}
	return nil, false
}

// pooledReader reads a plain socket without holding a buffer while it
// waits: it waits until the socket has data, then borrows a splice buffer
// and reads into it. The same system calls as a Read, but an idle
// connection holds no memory for its next bytes. One per pump direction,
// so a read allocates nothing.
type pooledReader struct {
	rc   syscall.RawConn
	b    *[spliceBufferSize]byte
	n    int
	rerr error
	try  func(fd uintptr) bool
}

func newPooledReader(rc syscall.RawConn) *pooledReader {
	r := &pooledReader{rc: rc}
	r.try = func(fd uintptr) bool {
		if r.b == nil {
			r.b = spliceBuffers.Get().(*[spliceBufferSize]byte)
		}
		for {
			r.n, r.rerr = syscall.Read(int(fd), r.b[:])
			if r.rerr != syscall.EINTR {
				break
			}
		}
		if r.rerr == syscall.EAGAIN || r.rerr == syscall.EWOULDBLOCK {
			spliceBuffers.Put(r.b) // nothing yet: wait without it
			r.b = nil
			return false
		}
		return true
	}
	return r
}

// read returns the borrowed buffer (nil when the wait failed before any
// read) and what was read into it; the caller puts the buffer back in
// spliceBuffers when done with it.
func (r *pooledReader) read() (*[spliceBufferSize]byte, int, error) {
	r.b, r.n, r.rerr = nil, 0, nil
	err := r.rc.Read(r.try)
	b := r.b
	r.b = nil
	switch {
	case err != nil:
		return b, 0, err
	case r.rerr != nil:
		return b, 0, os.NewSyscallError("read", r.rerr)
	case r.n <= 0:
		return b, 0, io.EOF
	}
	return b, r.n, nil
}
