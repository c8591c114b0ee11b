package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"

	"palisade.dev/palisade/internal/proxy"
)

// BenchmarkIdleConnections opens one keep-alive connection per iteration
// through a client sidecar's outbound port to a server sidecar (STRICT
// mTLS), sends one request on it and leaves it open and idle, as the
// mesh benchmark's 1,000 idle connections do. It reports the live heap
// and goroutine stacks each idle connection holds, after a GC, across
// both sidecars, the app and the client, all in this process (the
// client's and the app's share is the same whatever the sidecars do).
// Run with -benchtime 500x.
func BenchmarkIdleConnections(b *testing.B) {
	m := newTestMesh(b)
	m.write("pa.yaml", strictMesh)
	m.reload()
	m.sidecarWith("productcatalog", "productcatalog-sa", m.ca.issue(b, catalogID), m.ca.issue(b, catalogID), proxy.Options{
		Inbound: []proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: app(b)}},
	}, &proxy.Telemetry{})
	cert := m.ca.issue(b, frontendID)
	front := m.sidecarWith("frontend", "frontend-sa", cert, cert, proxy.Options{
		Outbound: []proxy.OutboundPort{{Listen: "127.0.0.1:0", Target: "productcatalog:5000"}},
	}, &proxy.Telemetry{})
	addr := front.Options().Outbound[0].Listen
	br := bufio.NewReader(nil)
	open := func() (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(c, "GET /products/?q=1 HTTP/1.1\r\nHost: productcatalog:5000\r\n\r\n"); err != nil {
			c.Close()
			return nil, err
		}
		br.Reset(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			c.Close()
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		return c, nil
	}
	eventually(b, "frontend reaches productcatalog", func() error {
		c, err := open()
		if err == nil {
			c.Close()
		}
		return err
	})
	live := func() (heap, stacks uint64, goroutines int) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
	}
	h0, s0, g0 := live()
	var conns []net.Conn
	b.ResetTimer()
	for b.Loop() {
		c, err := open()
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	b.StopTimer()
	h1, s1, g1 := live()
	n := float64(len(conns))
	b.ReportMetric((float64(h1+s1)-float64(h0+s0))/n, "B/idle-conn")
	b.ReportMetric((float64(s1)-float64(s0))/n, "stack-B/idle-conn")
	b.ReportMetric(float64(g1-g0)/n, "goroutines/idle-conn")
	for _, c := range conns {
		c.Close()
	}
}
