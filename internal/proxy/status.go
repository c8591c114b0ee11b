package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultStatusPort is Istio's sidecar status port: the kubelet's
// rewritten app probes (/app-health/...) and the sidecar's own readiness
// (/healthz/ready).
const DefaultStatusPort = 15020

// Status is the sidecar's status listener. Unlike the admin listener it
// listens on the pod's address, since the kubelet probes from the node.
type Status struct {
	ln  net.Listener
	srv *http.Server
}

// StartStatus serves the probe forwarder under /app-health/, the
// sidecar's readiness (the admin listener's /ready) as /healthz/ready,
// and its certificate chain and roots as /certs (never the key), which
// `palisade proxy-config secret --kubeconfig` reads through the API
// server's pod proxy.
func StartStatus(addr string, probes *ProbeForwarder, s AdminSources, log *slog.Logger) (*Status, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: status listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /app-health/", probes)
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.Store.Ready():
		default:
			http.Error(w, "config not received yet", http.StatusServiceUnavailable)
			return
		}
		if len(s.Certs.Chain()) == 0 {
			http.Error(w, "no certificate yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n")) //nolint:errcheck
	})
	mux.Handle("GET /certs", certsHandler(s.Certs))
	return &Status{ln: ln, srv: serveHTTP(ln, mux, 5*time.Second, "status", log)}, nil
}

// Addr is the bound address.
func (s *Status) Addr() string { return s.ln.Addr().String() }

// Close stops the status listener.
func (s *Status) Close() error { return s.srv.Close() }
