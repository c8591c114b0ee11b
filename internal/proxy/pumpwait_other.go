//go:build !unix

package proxy

import (
	"io"
	"syscall"
)

// plainSocket: waiting without a buffer needs a non-blocking read, which
// is only written for unix; elsewhere pump waits in a small buffer.
func plainSocket(io.Reader) (syscall.RawConn, bool) { return nil, false }

type pooledReader struct{}

func newPooledReader(syscall.RawConn) *pooledReader { return &pooledReader{} }

func (*pooledReader) read() (*[spliceBufferSize]byte, int, error) {
	panic("unreachable: plainSocket never reports a socket here")
}
