package dashboard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"palisade.dev/palisade/internal/controlplane"
)

// AttachOptions say where the dashboard is served.
type AttachOptions struct {
	Options
	// Addr, when set, is a listener of its own for the dashboard (to
	// expose it beyond the admin listener's loopback); every request to
	// it needs the token in TokenFile.
	Addr      string
	TokenFile string
	// CertFile and KeyFile make Addr serve HTTPS. A non-loopback Addr
	// without them is refused unless InsecurePlaintext is set: the token
	// would cross the network in the clear.
	CertFile, KeyFile string
	InsecurePlaintext bool
}

// Attached is a dashboard serving for a control plane.
type Attached struct {
	*Dashboard
	url string
}

// Attach mounts a dashboard on d's admin listener, starts collecting the
// sidecars' records, and serves the exposed listener when one is asked
// for. It stops with ctx.
func Attach(ctx context.Context, d *controlplane.Daemon, o AttachOptions) (*Attached, error) {
	dash := New(d.Push, o.Options)
	a := &Attached{Dashboard: dash}
	if o.Addr != "" {
		url, err := serveExposed(ctx, dash.Handler(), o)
		if err != nil {
			return nil, err
		}
		a.url = url
	}
	d.Mount(RequireAddressHost(dash.Handler()))
	go dash.Run(ctx)
	return a, nil
}

// URL is the exposed listener's base URL ("https://host:port"), "" when
// there is none.
func (a *Attached) URL() string { return a.url }

// serveExposed serves h on o.Addr behind the token, over TLS when a
// certificate is given, until ctx ends; it returns the base URL.
func serveExposed(ctx context.Context, h http.Handler, o AttachOptions) (string, error) {
	if o.TokenFile == "" {
		return "", errors.New("dashboard: an exposed listener needs a token file")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return "", errors.New("dashboard: a TLS certificate needs its key, and a key its certificate")
	}
	var tlsConf *tls.Config
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return "", fmt.Errorf("dashboard: TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if !o.InsecurePlaintext && !IsLoopback(o.Addr) {
		return "", fmt.Errorf("dashboard: %s is not a loopback address: serving it without TLS would send the dashboard token in the clear; give a TLS certificate and key, or ask for plaintext explicitly", o.Addr)
	}
	token, err := LoadOrCreateToken(o.TokenFile)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return "", fmt.Errorf("dashboard: listen %s: %w", o.Addr, err)
	}
	scheme := "http"
	if tlsConf != nil {
		ln, scheme = tls.NewListener(ln, tlsConf), "https"
	}
	srv := &http.Server{Handler: RequireToken(h, token), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	go func() { <-ctx.Done(); srv.Close() }()
	return scheme + "://" + ln.Addr().String(), nil
}

// IsLoopback reports whether addr (host:port) can only be reached from this
// machine.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
