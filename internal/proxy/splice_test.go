package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"
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

// From a real socket, plain or peeked, pump waits without a buffer and
// copies every byte, through bursts, pauses and the end of the stream.
func TestPumpFromSocket(t *testing.T) {
	data := make([]byte, 200<<10)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	for _, peeked := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "peeked"}[peeked], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				rest := data
				for i, size := range []int{3, 100, 2048, 1, 40000, 2047, 70000} {
					size = min(size, len(rest))
					_, _ = c.Write(rest[:size])
					rest = rest[size:]
					if i%2 == 0 {
						time.Sleep(5 * time.Millisecond) // the reader waits, idle
					}
				}
				_, _ = c.Write(rest)
			}()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var src io.Reader = c
			if peeked {
				br := bufio.NewReader(c)
				if _, err := br.Peek(3); err != nil {
					t.Fatal(err)
				}
				src = &peekedConn{Conn: c, r: br, direct: true}
			}
			if _, ok := plainSocket(src); ok == peeked && runtime.GOOS != "windows" {
				t.Fatalf("plainSocket = %v for a %s source", ok, t.Name())
			}
			var out bytes.Buffer
			n, err := pump(&out, src)
			if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("pump = %d, %v; equal %v", n, err, bytes.Equal(out.Bytes(), data))
			}
		})
	}
}
