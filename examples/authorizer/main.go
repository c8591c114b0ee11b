// Command authorizer is a small HTTP ext_authz authorizer in the style of
// Istio's ext-authz sample, for trying envoyExtAuthzHttp providers and for
// internal/extauthz's integration tests.
//
// A request carrying "x-ext-authz: allow" is allowed (200) with the
// x-ext-authz-check-result: allowed header, which a provider can pass
// upstream (headersToUpstreamOnAllow). "x-ext-authz: error" gets a 500 (an
// authorizer failure). Anything else is denied with 403, a short body and
// the x-ext-authz-check-result: denied header. Every answer also carries
// x-ext-authz-check-received, which echoes what the authorizer saw (method,
// host, path, body length), so tests can assert the request that reached it.
//
// Usage: authorizer [-addr 127.0.0.1:0] [-delay 0s] [-log]
// It prints "listening on HOST:PORT" once it accepts connections; with -log,
// also one "check: METHOD HOST/PATH -> RESULT" line per request it answers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "authorizer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("authorizer", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	delay := fs.Duration("delay", 0, "wait this long before answering (to test timeouts)")
	logChecks := fs.Bool("log", false, "print one line per check answered")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *delay < 0 {
		return errors.New("-delay must not be negative")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var logw io.Writer
	if *logChecks {
		logw = &lockedWriter{w: out}
	}
	srv := &http.Server{Handler: handler(*delay, logw), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	}
}

// lockedWriter serializes the check lines of concurrent requests.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// handler answers checks; when logw is not nil it gets one line per check.
func handler(delay time.Duration, logw io.Writer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("x-ext-authz-check-received",
			fmt.Sprintf("%s %s%s body=%d", r.Method, r.Host, r.URL.RequestURI(), len(body)))
		result := "denied"
		defer func() {
			if logw != nil {
				fmt.Fprintf(logw, "check: %s %s%s -> %s\n", r.Method, r.Host, r.URL.RequestURI(), result)
			}
		}()
		switch r.Header.Get("x-ext-authz") {
		case "allow":
			result = "allowed"
			w.Header().Set("x-ext-authz-check-result", "allowed")
			w.WriteHeader(http.StatusOK)
		case "error":
			result = "error"
			http.Error(w, "authorizer failure", http.StatusInternalServerError)
		default:
			w.Header().Set("x-ext-authz-check-result", "denied")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, "denied by ext_authz for not found header `x-ext-authz: allow` in the request")
		}
	})
}
