// Command workshop-app is the product catalog sample app that Palisade's
// workshop runs as three services in the mesh: frontend, productcatalog and
// catalogdetail. The first argument picks the service. It listens on
// 127.0.0.1:$PORT and reaches the other services by their mesh names through
// the sidecar's outbound proxy given in $HTTP_PROXY, or, with no $HTTP_PROXY
// (`palisade up --isolate`), directly: iptables then hands the connection to
// its sidecar and the sidecar's DNS proxy answers the names.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// The mesh names the services call each other by.
const (
	productCatalogURL = "http://productcatalog:5000"
	catalogDetailURL  = "http://catalogdetail:3000"
)

// defaultPorts are used when $PORT is not set, so the app can be started by
// hand outside the mesh.
var defaultPorts = map[string]string{
	"frontend":       "9000",
	"productcatalog": "5000",
	"catalogdetail":  "3000",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "workshop-app:", err)
		os.Exit(1)
	}
}

const usage = "usage: workshop-app frontend|productcatalog|catalogdetail"

// run starts the service named by args[0] and serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) != 1 {
		return errors.New(usage)
	}
	service := args[0]
	port := getenv("PORT")
	if port == "" {
		port = defaultPorts[service]
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("service", service)
	client, err := newClient(getenv)
	if err != nil {
		return err
	}
	h, err := newHandler(service, client, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "proxy", getenv("HTTP_PROXY"))
	return serve(ctx, ln, h)
}

// newHandler builds the HTTP handler of one service.
func newHandler(service string, client *http.Client, log *slog.Logger) (http.Handler, error) {
	switch service {
	case "frontend":
		return newFrontend(client, productCatalogURL, log), nil
	case "productcatalog":
		return newProductCatalog(client, catalogDetailURL, log), nil
	case "catalogdetail":
		return newCatalogDetail(), nil
	default:
		return nil, fmt.Errorf("unknown service %q; %s", service, usage)
	}
}

// newClient returns the client used to call other services: every request
// goes through the proxy in $HTTP_PROXY (the sidecar's outbound listener),
// as http.ProxyFromEnvironment would send it, but read from getenv so tests
// need not touch the process environment.
func newClient(getenv func(string) string) (*http.Client, error) {
	raw := getenv("HTTP_PROXY")
	if raw == "" {
		raw = getenv("http_proxy")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("HTTP_PROXY %q is not a URL", raw)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// serve serves h on ln until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
