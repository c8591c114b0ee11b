package proxy_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
)

// BenchmarkSidecarPair sends keep-alive HTTP/1.1 requests through a
// client sidecar's outbound port to a server sidecar under STRICT mTLS,
// as the mesh benchmark does: metrics on, access log off. Allocations
// count both sidecars, the client and the app, all in this process.
func BenchmarkSidecarPair(b *testing.B) {
	m := newTestMesh(b)
	m.write("pa.yaml", strictMesh)
	m.reload()
	metrics := func() *proxy.Telemetry {
		mt, err := telemetry.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		return &proxy.Telemetry{Metrics: mt}
	}
	m.sidecarWith("productcatalog", "productcatalog-sa", m.ca.issue(b, catalogID), m.ca.issue(b, catalogID), proxy.Options{
		Inbound: []proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: app(b)}},
	}, metrics())
	cert := m.ca.issue(b, frontendID)
	front := m.sidecarWith("frontend", "frontend-sa", cert, cert, proxy.Options{
		Outbound: []proxy.OutboundPort{{Listen: "127.0.0.1:0", Target: "productcatalog:5000"}},
	}, metrics())
	u := "http://" + front.Options().Outbound[0].Listen + "/products/?q=1"
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	get := func() error {
		resp, err := c.Get(u)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	eventually(b, "frontend reaches productcatalog", get)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
