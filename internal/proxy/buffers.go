package proxy

import "sync"

// copyBufferSize is the size of the buffers that carry bodies and
// spliced bytes: one TLS record holds at most 16 KiB of plaintext.
const copyBufferSize = 16 << 10

// bufferPool lends copyBufferSize byte slices; it implements
// httputil.BufferPool. Buffers travel as array pointers, so neither Get
// nor Put allocates.
type bufferPool struct{ p sync.Pool }

// Get returns a buffer of copyBufferSize bytes.
func (bp *bufferPool) Get() []byte {
	if b, ok := bp.p.Get().(*[copyBufferSize]byte); ok {
		return b[:]
	}
	return new([copyBufferSize]byte)[:]
}

// Put returns b, which Get gave out, to the pool.
func (bp *bufferPool) Put(b []byte) {
	if cap(b) < copyBufferSize {
		return
	}
	bp.p.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
}

// copyBuffers is shared by every copy loop of the proxy.
var copyBuffers = &bufferPool{}

// spliceBufferSize is the buffer a busy splice direction borrows: two
// TLS records' worth, so a read from a plain socket fills two records
// with one system call.
const spliceBufferSize = 32 << 10

// spliceBuffers lends spliceBufferSize byte slices to splice.
var spliceBuffers = sync.Pool{New: func() any { return new([spliceBufferSize]byte) }}
