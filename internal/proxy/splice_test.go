package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
)

// chunkReader returns data in reads of the given sizes, then err.
type chunkReader struct {
	data  []byte
	sizes []int
	err   error
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = min(n, r.sizes[0])
		r.sizes = r.sizes[1:]
	}
	n = copy(b, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

type shortWriter struct{ bytes.Buffer }

func (w *shortWriter) Write(b []byte) (int, error) {
	if len(b) > 1 {
		b = b[:len(b)-1]
	}
	return w.Buffer.Write(b)
}

func TestPump(t *testing.T) {
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		size    int
		sizes   []int
		err     error
		wantErr error
	}{
		{name: "empty", size: 0, err: io.EOF},
		{name: "one small read", size: 100, err: io.EOF},
		{name: "exactly the wait buffer", size: waitBufferSize, err: io.EOF},
		{name: "just over the wait buffer", size: waitBufferSize + 1, err: io.EOF},
		{name: "bulk in whole reads", size: len(data), err: io.EOF},
		{name: "bursts of every size", size: len(data), sizes: []int{1, 2048, 2048, 16384, 100, 2048, 5000, 16384, 16384, 3, 70000}, err: io.EOF},
		{name: "read error after data", size: 5000, err: boom, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := pump(&out, &chunkReader{data: data[:tt.size], sizes: tt.sizes, err: tt.err})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n != int64(tt.size) || !bytes.Equal(out.Bytes(), data[:tt.size]) {
				t.Fatalf("copied %d bytes (%d in dst), want %d, equal %v", n, out.Len(), tt.size, bytes.Equal(out.Bytes(), data[:tt.size]))
			}
		})
	}
	t.Run("short write", func(t *testing.T) {
		if _, err := pump(&shortWriter{}, &chunkReader{data: data[:10], err: io.EOF}); !errors.Is(err, io.ErrShortWrite) {
			t.Fatalf("err = %v, want io.ErrShortWrite", err)
		}
	})
}

// A peeked connection gives the peeked bytes, then reads the connection
// itself and lets its buffer go.
func TestPeekedConnLetsBufferGo(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		_, _ = b.Write([]byte("GET / HTTP/1.1\r\n"))
		_, _ = b.Write([]byte("rest"))
		b.Close()
	}()
	br := bufio.NewReader(a)
	if p, err := br.Peek(3); err != nil || string(p) != "GET" {
		t.Fatalf("peek = %q, %v", p, err)
	}
	pc := &peekedConn{Conn: a, r: br, direct: true}
	got, err := io.ReadAll(pc)
	if err != nil || string(got) != "GET / HTTP/1.1\r\nrest" {
		t.Fatalf("read %q, %v", got, err)
	}
	if pc.r != nil {
		t.Error("the peek buffer is still held")
	}
}
