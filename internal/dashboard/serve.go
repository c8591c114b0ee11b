package dashboard

import (
	"context"
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
}

// Attached is a dashboard serving for a control plane.
type Attached struct {
	*Dashboard
	ln  net.Listener
	srv *http.Server
}

// Attach mounts a dashboard on d's admin listener, starts collecting the
// sidecars' records, and serves the exposed listener when one is asked
// for. It stops with ctx.
func Attach(ctx context.Context, d *controlplane.Daemon, o AttachOptions) (*Attached, error) {
	dash := New(d.Push, o.Options)
	a := &Attached{Dashboard: dash}
	if o.Addr != "" {
		if o.TokenFile == "" {
			return nil, errors.New("dashboard: an exposed listener needs a token file")
		}
		token, err := LoadOrCreateToken(o.TokenFile)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", o.Addr)
		if err != nil {
			return nil, fmt.Errorf("dashboard: listen %s: %w", o.Addr, err)
		}
		a.ln = ln
		a.srv = &http.Server{Handler: RequireToken(dash.Handler(), token), ReadHeaderTimeout: 10 * time.Second}
		go a.srv.Serve(ln) //nolint:errcheck // ends with Close
		go func() { <-ctx.Done(); a.srv.Close() }()
	}
	d.Mount(dash.Handler())
	go dash.Run(ctx)
	return a, nil
}

// Addr is the exposed listener's address, "" when there is none.
func (a *Attached) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}
