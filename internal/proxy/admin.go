package proxy

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"

	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/telemetry"
)

// ChainSource is the workload's current certificate chain and the trust
// bundle it verifies peers with.
type ChainSource interface {
	Chain() []*x509.Certificate
	RenewAt() time.Time
	Bundle() *identity.Bundle
}

// AdminSources is what the admin listener reports on.
type AdminSources struct {
	Store    *Store
	Certs    ChainSource
	Keys     *jwt.KeyStore
	Registry *prometheus.Registry
	// Records, when set, serves /records: the last requests and
	// connections, for the control plane's dashboard.
	Records *telemetry.Ring
	// Pprof serves net/http/pprof under /debug/pprof/; off unless asked
	// for, since profiles expose the process's internals.
	Pprof bool
}

// Admin is the sidecar's admin listener, on loopback: readiness, metrics
// and what `palisade proxy-config` reads.
type Admin struct {
	ln  net.Listener
	srv *http.Server
}

// StartAdmin serves the admin API on addr.
func StartAdmin(addr string, s AdminSources, log *slog.Logger) (*Admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: admin listen: %w", err)
	}
	mux := http.NewServeMux()
	if s.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{}
		if c := s.Store.Current(); c != nil {
			out["version"] = c.Version
		}
		res := map[string]map[string]json.RawMessage{}
		for t, m := range s.Store.Raw() {
			res[t] = map[string]json.RawMessage{}
			for name, msg := range m {
				b, err := protojson.Marshal(msg)
				if err != nil {
					continue
				}
				res[t][name] = b
			}
		}
		out["resources"] = res
		writeJSON(w, out)
	})
	mux.Handle("GET /certs", certsHandler(s.Certs))
	mux.HandleFunc("GET /jwt", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{"keySets": s.Keys.Status()}
		if c := s.Store.Current(); c != nil && c.JWT != nil {
			out["rules"] = c.JWT.Rules()
		}
		writeJSON(w, out)
	})
	if s.Records != nil {
		// GET /records?after=N: the records from sequence number N on
		// (the "next" of the previous answer), at most 5,000 at a time.
		mux.HandleFunc("GET /records", func(w http.ResponseWriter, r *http.Request) {
			var from uint64
			if v := r.URL.Query().Get("after"); v != "" {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					http.Error(w, "after: not a sequence number", http.StatusBadRequest)
					return
				}
				from = n
			}
			b := s.Records.Since(from, 5000)
			buf := recordsBuffers.Get().(*[]byte)
			*buf = b.AppendJSON((*buf)[:0])
			w.Header().Set("Content-Type", "application/json")
			w.Write(*buf) //nolint:errcheck
			recordsBuffers.Put(buf)
		})
	}
	return &Admin{ln: ln, srv: serveHTTP(ln, mux, 10*time.Second, "admin", log)}, nil
}

// CertsReport is what GET /certs answers: the workload's certificate chain
// (leaf first), when the agent plans to renew it, and the roots of the
// trust bundle in use. Never the key: the chain and the roots are what
// every TLS peer of the sidecar is shown anyway.
type CertsReport struct {
	ChainPEM string    `json:"chainPEM"`
	RenewAt  time.Time `json:"renewAt"`
	RootsPEM string    `json:"rootsPEM,omitempty"`
}

// certsHandler serves GET /certs, on the admin listener and, for
// `palisade proxy-config secret --kubeconfig` through the API server, on
// the status listener.
func certsHandler(c ChainSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chain := c.Chain()
		if len(chain) == 0 {
			http.Error(w, "no certificate yet", http.StatusServiceUnavailable)
			return
		}
		out := CertsReport{RenewAt: c.RenewAt()}
		for _, cert := range chain {
			out.ChainPEM += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		}
		if b := c.Bundle(); b.Len() > 0 {
			out.RootsPEM = string(b.MarshalPEM())
		}
		writeJSON(w, out)
	})
}

// serveHTTP serves h on ln in the background until the server is closed;
// what names the listener in the log if it stops on its own.
func serveHTTP(ln net.Listener, h http.Handler, headerTimeout time.Duration, what string, log *slog.Logger) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" listener stopped", "err", err)
		}
	}()
	return srv
}

// Addr is the bound address.
func (a *Admin) Addr() string { return a.ln.Addr().String() }

// Close stops the admin listener.
func (a *Admin) Close() error { return a.srv.Close() }

// recordsBuffers holds the buffers /records answers are encoded in: the
// control plane reads them several times a second.
var recordsBuffers = sync.Pool{New: func() any { return new([]byte) }}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck
}
