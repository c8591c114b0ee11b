package svid

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"crypto/x509"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// fakeClock moves only when told; After channels fire when it passes them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		keep = append(keep, w)
	}
	c.waiters = keep
}

func (c *fakeClock) Set(t time.Time) { c.Advance(t.Sub(c.Now())) }

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// eventually polls cond for up to 15s of real time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitWaiting waits until the agent sleeps on the clock.
func waitWaiting(t *testing.T, c *fakeClock) {
	t.Helper()
	eventually(t, "the agent to wait on the clock", func() bool { return c.pending() > 0 })
}

// logBuffer is a concurrency-safe slog text sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) Contains(s string) bool { return strings.Contains(b.String(), s) }

func newLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testCA is the control plane's CA served on 127.0.0.1 over TLS.
type testCA struct {
	ca     *ca.Authority
	tokens *ca.JoinTokens
	clock  *fakeClock
	addr   string
	g      *grpc.Server
}

func startCA(t *testing.T, clock *fakeClock, opts ca.Options) *testCA {
	t.Helper()
	opts.TrustDomain, opts.Clock = td, clock.Now
	a, err := ca.Init(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCA{ca: a, tokens: ca.NewJoinTokens(td, clock.Now), clock: clock}
	c.serve(t, "127.0.0.1:0")
	return c
}

func (c *testCA) serve(t *testing.T, addr string) {
	t.Helper()
	srv, err := ca.NewServer(c.ca, ca.Chain{c.tokens, ca.CertificateAuthenticator{Bundle: c.ca.Bundle, Clock: c.clock.Now}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	serving := ca.NewServingCertificate(c.ca, identity.ControlPlaneID(td), 0, c.clock.Now)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(ca.ServerTLSConfig(serving))))
	srv.Register(g)
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	c.g = g
	go g.Serve(ln)
	t.Cleanup(g.Stop)
}

func (c *testCA) stop() { c.g.Stop() }

// agentConfig is a config for workload ns/sa with a fresh join token.
func (c *testCA) agentConfig(t *testing.T, ns, sa string, logs *logBuffer) Config {
	t.Helper()
	tok, err := c.tokens.Issue(ns, sa, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		CAAddress:  c.addr,
		CARoots:    c.ca.Bundle(),
		JoinToken:  tok,
		TTL:        time.Hour,
		Jitter:     0.01,
		MinBackoff: time.Second,
		MaxBackoff: 4 * time.Second,
		Clock:      c.clock,
		Logger:     newLogger(logs),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.2, MaxDelay: 100 * time.Millisecond}, MinConnectTimeout: time.Second,
		})},
	}
}

type (
	x509Cert   = x509.Certificate
	x509Bundle = x509bundle.Bundle
	tdT        = spiffeid.TrustDomain
	idT        = spiffeid.ID
)

func idFor(ns, sa string) (spiffeid.ID, error) { return spiffeid.FromSegments(td, "ns", ns, "sa", sa) }
