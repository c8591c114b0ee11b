package proxy_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
)

// stallingUpstream answers /silent never, /stall with its headers and a
// first byte and then nothing, /drip a byte every 100ms for 1.2s; a
// request is held at most 3s.
func stallingUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait := func() {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}
		switch r.URL.Path {
		case "/silent":
			wait()
		case "/stall":
			io.WriteString(w, ".") //nolint:errcheck
			w.(http.Flusher).Flush()
			wait()
		case "/drip":
			for range 12 {
				io.WriteString(w, ".") //nolint:errcheck
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestStreamIdleTimeoutUpstream: the stream idle timeout holds where the
// upstream is not the local app too, on the sidecar's outbound and on the
// gateway. An upstream silent after the request was sent gets Envoy's 408
// "stream timeout"; one that stops in the middle of its answer has it
// cut (the client sees the answer end early, not a clean end); one that
// keeps answering is not cut. Each cut is counted once.
func TestStreamIdleTimeoutUpstream(t *testing.T) {
	upstream := stallingUpstream(t)
	limits := proxy.Limits{StreamIdleTimeout: 500 * time.Millisecond}

	m := newTestMesh(t)
	m.write("gateway.yaml", gatewayAll)
	m.reload()
	m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: upstream}}, false)

	outReg, gwReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	outLim, err := telemetry.NewLimits(outReg)
	if err != nil {
		t.Fatal(err)
	}
	gwLim, err := telemetry.NewLimits(gwReg)
	if err != nil {
		t.Fatal(err)
	}
	front := m.sidecarWith("frontend", "frontend-sa", m.ca.issue(t, frontendID), m.ca.issue(t, frontendID),
		proxy.Options{HTTP: "127.0.0.1:0", Limits: limits}, &proxy.Telemetry{Limits: outLim})
	g := m.gatewayWith("", limits, gwLim, 80)

	viaOutbound := proxyClient(front)
	direct := &http.Client{Timeout: 10 * time.Second}
	targets := []struct {
		name   string
		client *http.Client
		url    string
		reg    *prometheus.Registry
	}{
		// The outbound listener passes an unknown host through: the
		// upstream is the stalling server itself.
		{"sidecar outbound", viaOutbound, "http://" + upstream, outReg},
		{"gateway", direct, "http://" + g.addrs[80], gwReg},
	}
	for _, tgt := range targets {
		s := &limitedSidecar{reg: tgt.reg}
		t.Run(tgt.name, func(t *testing.T) {
			if tgt.name == "gateway" {
				eventually(t, "the gateway reaches productcatalog", func() error {
					_, err := tgt.client.Get(tgt.url + "/drip")
					return err
				})
			}
			before := s.exceeded(t, telemetry.LimitStreamIdle)
			t0 := time.Now()
			resp, err := tgt.client.Get(tgt.url + "/silent")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout || string(b) != "stream timeout" {
				t.Errorf("silent upstream: %d %q, want 408 stream timeout", resp.StatusCode, b)
			}
			if d := time.Since(t0); d > 2*time.Second {
				t.Errorf("the silent request took %v, want it cut at about 500ms", d)
			}

			resp, err = tgt.client.Get(tgt.url + "/stall")
			if err != nil {
				t.Fatal(err)
			}
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || err == nil {
				t.Errorf("upstream stalled mid-answer: %d %q, error %v; want 200 and the answer cut", resp.StatusCode, b, err)
			}

			resp, err = tgt.client.Get(tgt.url + "/drip")
			if err != nil {
				t.Fatal(err)
			}
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil || string(b) != strings.Repeat(".", 12) {
				t.Errorf("an upstream answering a byte every 100ms for 1.2s: %d %q %v, want 200 and every byte", resp.StatusCode, b, err)
			}
			if got := s.exceeded(t, telemetry.LimitStreamIdle) - before; got != 2 {
				t.Errorf("stream_idle_timeout counted %v times, want 2 (silent, stalled)", got)
			}
		})
	}
}
