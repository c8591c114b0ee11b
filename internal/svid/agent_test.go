package svid

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
)

func runAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	a, err := NewAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	return a
}

func waitReady(t *testing.T, a *Agent) {
	t.Helper()
	select {
	case <-a.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("agent got no certificate")
	}
}

func serial(t *testing.T, a *Agent) string {
	t.Helper()
	c, err := a.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber.String()
}

func TestAgentObtainsAndRotates(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	cfg := c.agentConfig(t, "default", "sleep", logs)
	cfg.Registerer = reg
	a := runAgent(t, cfg)
	waitReady(t, a)

	s, err := a.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if s.ID.String() != "spiffe://cluster.local/ns/default/sa/sleep" {
		t.Fatalf("identity = %s", s.ID)
	}
	first, _ := a.GetCertificate(nil)
	if got := first.Leaf.NotAfter.Sub(clock.Now()); got != time.Hour {
		t.Errorf("lifetime = %s, want the 1h asked for", got)
	}
	// Half the lifetime counted from issuance (the backdated NotBefore
	// does not count), less up to the jitter.
	renewAt := a.RenewAt()
	lifetime := first.Leaf.NotAfter.Sub(clock.Now())
	want := clock.Now().Add(lifetime / 2)
	if renewAt.After(want) || renewAt.Before(want.Add(-lifetime/100)) {
		t.Errorf("renewAt = %s, want within 1%% of lifetime before %s", renewAt, want)
	}
	if got := testutil.ToFloat64(a.expiry); got != float64(first.Leaf.NotAfter.Unix()) {
		t.Errorf("expiry gauge = %v, want %v", got, first.Leaf.NotAfter.Unix())
	}

	// Nothing happens before renewAt...
	waitWaiting(t, clock)
	clock.Set(renewAt.Add(-time.Second))
	if serial(t, a) != first.Leaf.SerialNumber.String() {
		t.Fatal("renewed before renewAt")
	}
	// ... and at renewAt the agent renews, authenticating with its
	// certificate (the join token was one-time).
	clock.Set(renewAt)
	eventually(t, "rotation", func() bool { return serial(t, a) != first.Leaf.SerialNumber.String() })
	second, _ := a.GetCertificate(nil)
	if second.PrivateKey == first.PrivateKey {
		t.Error("rotation reused the key")
	}
	if _, err := identity.VerifyChain(a, a.Chain(), clock.Now()); err != nil {
		t.Errorf("rotated chain: %v", err)
	}
	if got := testutil.ToFloat64(a.renewals.WithLabelValues("success")); got != 2 {
		t.Errorf("successful renewals = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "palisade_svid_expiry_timestamp_seconds"); err != nil || n != 1 {
		t.Errorf("registered expiry gauge: %d, %v", n, err)
	}
	if logs.Contains(cfg.JoinToken) {
		t.Error("the join token was logged")
	}
}

// A certificate as short-lived as its CA's one-minute backdate renews at
// half its lifetime from issuance, not at once and again in a loop.
func TestAgentShortLivedRenewsAtHalfLife(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	cfg := c.agentConfig(t, "default", "sleep", &logBuffer{})
	cfg.TTL = time.Minute
	a := runAgent(t, cfg)
	waitReady(t, a)
	first, _ := a.GetCertificate(nil)
	if got := first.Leaf.NotAfter.Sub(first.Leaf.NotBefore); got <= time.Minute {
		t.Fatalf("lifetime from NotBefore = %s; the case needs a backdated NotBefore", got)
	}
	want := clock.Now().Add(30 * time.Second)
	if got := a.RenewAt(); got.After(want) || got.Before(want.Add(-time.Minute/100)) {
		t.Errorf("renewAt = %s, want within 1%% of the lifetime before %s", got, want)
	}
	waitWaiting(t, clock)
	if got := testutil.ToFloat64(a.renewals.WithLabelValues("success")); got != 1 {
		t.Errorf("successful renewals before renewAt = %v, want 1", got)
	}
	clock.Set(a.RenewAt())
	eventually(t, "rotation at half-life", func() bool { return serial(t, a) != first.Leaf.SerialNumber.String() })
	waitWaiting(t, clock)
	if got := testutil.ToFloat64(a.renewals.WithLabelValues("success")); got != 2 {
		t.Errorf("successful renewals = %v, want 2", got)
	}
}

func TestAgentKeepsServingWhileCADown(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	logs := &logBuffer{}
	a := runAgent(t, c.agentConfig(t, "default", "sleep", logs))
	waitReady(t, a)
	first, _ := a.GetCertificate(nil)
	addr := c.addr

	c.stop()
	waitWaiting(t, clock)
	clock.Set(a.RenewAt())
	eventually(t, "a WARN about the failed renewal", func() bool { return logs.Contains("level=WARN") })
	if got, _ := a.GetCertificate(nil); got != first {
		t.Fatal("the agent dropped its certificate while the CA was away")
	}

	// Close to expiry the agent logs at ERROR and still serves.
	clock.Set(first.Leaf.NotAfter.Add(-10 * time.Minute))
	eventually(t, "an ERROR as expiry nears", func() bool { return logs.Contains("level=ERROR") })
	if got, _ := a.GetCertificate(nil); got != first {
		t.Fatal("the agent dropped its certificate near expiry")
	}

	// The CA comes back on the same address: the next retry renews.
	c.serve(t, addr)
	for serial(t, a) == first.Leaf.SerialNumber.String() {
		waitWaiting(t, clock)
		clock.Advance(5 * time.Second) // > MaxBackoff with jitter
		time.Sleep(20 * time.Millisecond)
	}
	got, _ := a.GetCertificate(nil)
	if !got.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("the renewed certificate does not outlive the old one")
	}
}

func TestAgentRefusedJoinToken(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	logs := &logBuffer{}
	cfg := c.agentConfig(t, "default", "sleep", logs)
	if _, err := c.tokens.Redeem(cfg.JoinToken); err != nil { // spent by someone else
		t.Fatal(err)
	}
	a := runAgent(t, cfg)
	eventually(t, "the refusal to be logged", func() bool { return logs.Contains("join token already used") })
	select {
	case <-a.Ready():
		t.Fatal("agent is ready with a spent token")
	default:
	}
	if _, err := a.GetCertificate(nil); err == nil {
		t.Error("GetCertificate succeeded without a certificate")
	}
}

func TestAgentRejectsImpostorCA(t *testing.T) {
	clock := newFakeClock()
	real := startCA(t, clock, ca.Options{})
	impostor := startCA(t, clock, ca.Options{})
	logs := &logBuffer{}
	cfg := impostor.agentConfig(t, "default", "sleep", logs)
	cfg.CARoots = real.ca.Bundle() // trusts the real mesh, dials the impostor
	a := runAgent(t, cfg)
	eventually(t, "the handshake failure to be logged", func() bool { return logs.Contains("level=WARN") })
	select {
	case <-a.Ready():
		t.Fatal("agent accepted a certificate from a CA outside its trust bundle")
	default:
	}
}

func TestMTLSBetweenAgents(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	client := runAgent(t, c.agentConfig(t, "default", "sleep", &logBuffer{}))
	server := runAgent(t, c.agentConfig(t, "default", "httpbin", &logBuffer{}))
	if got := mtlsPeer(t, clock, client, server); got != "cluster.local/ns/default/sa/sleep" {
		t.Errorf("server saw peer %q", got)
	}
}

// mtlsPeer makes one mTLS connection from client to server, each with its
// agent's certificate, the client requiring the server to be
// default/httpbin, and returns the peer principal the server saw (or its
// handshake error).
func mtlsPeer(t *testing.T, clock *fakeClock, client, server *Agent) string {
	t.Helper()
	waitReady(t, client)
	waitReady(t, server)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, identity.MTLSServerConfig(server, server, clock.Now, identity.AuthorizeMemberOf(td)))
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		id, _ := identity.PeerID(tc.ConnectionState())
		peer <- identity.Principal(id)
		io.Copy(io.Discard, tc)
	}()
	want, _ := identity.ForServiceAccount(td, "default", "httpbin")
	conn, err := tls.Dial("tcp", ln.Addr().String(), identity.MTLSClientConfig(client, client, clock.Now, identity.AuthorizeID(want)))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	return <-peer
}
