package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// backendBody is the small response every HTTP path measures.
var backendBody = []byte(strings.Repeat("palisade benchmark backend\n", 4))

// runBackend is `meshbench backend HTTP_ADDR TCP_ADDR`: the same small
// HTTP server for every path, and a TCP source that streams the number of
// bytes a client asks for (an 8-byte big-endian count) for throughput.
func runBackend(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("backend: want HTTP_ADDR TCP_ADDR")
	}
	hl, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	tl, err := net.Listen("tcp", args[1])
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(backendBody)
	})}
	go func() { <-ctx.Done(); srv.Close(); tl.Close() }()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go serveBytes(c)
		}
	}()
	fmt.Fprintln(os.Stdout, "backend serving", hl.Addr(), tl.Addr())
	if err := srv.Serve(hl); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

func serveBytes(c net.Conn) {
	defer c.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint64(hdr[:]))
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := int64(len(buf))
		if n < k {
			k = n
		}
		w, err := c.Write(buf[:k])
		if err != nil {
			return
		}
		n -= int64(w)
	}
}

// transfer asks the TCP source at addr for n bytes and reads them all,
// returning the throughput in MiB/s.
func transfer(addr string, n int64) (float64, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(n))
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	got, err := io.CopyBuffer(io.Discard, c, make([]byte, 64<<10))
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("transfer through %s: got %d of %d bytes", addr, got, n)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}
