package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
)

// TestOutboundBeforeConfig: an app that connects before the control
// plane's first push is refused, on the outbound port and the HTTP proxy
// alike, and the sidecar goes on serving.
func TestOutboundBeforeConfig(t *testing.T) {
	ca := newTestCA(t)
	log := slog.New(slog.DiscardHandler)
	cc := &proxy.Compiler{Self: proxy.Self{Ref: config.WorkloadRef{Namespace: "workshop", Name: "frontend"}}, Keys: jwt.NewKeyStore(jwt.KeyStoreOptions{})}
	store := proxy.NewStore(log, cc.Compile) // never fed: no config
	p := proxy.New(proxy.Options{
		Self:     cc.Self,
		HTTP:     "127.0.0.1:0",
		Outbound: []proxy.OutboundPort{{Listen: "127.0.0.1:0", Target: "productcatalog:5000"}},
	}, store, staticCerts{ca.issue(t, frontendID)}, &proxy.Telemetry{AccessLog: telemetry.NewAccessLog(io.Discard)}, log)
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()

	for range 2 {
		// Refused: reset at once, which may reach the client as early
		// as its connect.
		if c, err := net.Dial("tcp", p.Options().Outbound[0].Listen); err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: productcatalog:5000\r\n\r\n")
			if n, err := c.Read(make([]byte, 64)); err == nil {
				t.Fatalf("outbound port answered %d bytes before any config", n)
			}
			c.Close()
		}

		resp, err := proxyClient(p).Get("http://productcatalog.workshop:5000/")
		if err != nil {
			t.Fatalf("HTTP proxy: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("HTTP proxy before any config: %d, want 503", resp.StatusCode)
		}
	}
	select {
	case err := <-served:
		t.Fatalf("sidecar stopped: %v", err)
	default:
	}
}
