package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"palisade.dev/palisade/internal/identity"
)

func TestRootRotationStateMachine(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	dir := t.TempDir()
	opts := Options{TrustDomain: td, Clock: clock.Now, RotationGrace: time.Hour, PersistSlack: time.Nanosecond}
	a, err := Init(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	updates, cancel := a.Subscribe()
	defer cancel()
	if b := <-updates; b.Len() != 1 {
		t.Fatalf("initial bundle has %d roots", b.Len())
	}
	root1 := a.Bundle().Roots()[0]
	id := mustID(t, "default", "sleep")
	sign := func(ttl time.Duration) []*x509.Certificate {
		t.Helper()
		_, csr := newCSR(t, nil)
		chain, err := a.Sign(context.Background(), Request{CSR: csr, ID: id, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return chain
	}
	issuedBy := func(chain []*x509.Certificate) *x509.Certificate { return chain[len(chain)-1] }
	states := func() []string {
		var out []string
		for _, r := range a.Status().Roots {
			out = append(out, r.State)
		}
		return out
	}

	sign(2 * time.Hour) // expires t0+2h

	// Rotation: root 2 joins the bundle but does not issue yet.
	if _, err := a.RotateRoot(""); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-updates:
		if b.Len() != 2 {
			t.Fatalf("bundle after rotation has %d roots, want 2", b.Len())
		}
	default:
		t.Fatal("no bundle update after rotation")
	}
	if got := states(); len(got) != 2 || got[0] != "issuing" || got[1] != "pending" {
		t.Fatalf("states = %v, want [issuing pending]", got)
	}
	if _, err := a.RotateRoot(""); !errors.Is(err, ErrRotationInProgress) {
		t.Errorf("second rotation during grace: err = %v", err)
	}
	clock.Advance(10 * time.Minute)
	oldCert := sign(2 * time.Hour) // last certificate of root 1: expires t0+2h10m
	if !issuedBy(oldCert).Equal(root1) {
		t.Fatal("during the grace period the old root must still issue")
	}
	oldTLS := signWithKeyAny(t, a, mustID(t, "default", "client")) // expires t0+1h10m

	// Persisted: a restart during the grace period sees the same state.
	re, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := re.Status().Roots; len(got) != 2 || got[1].State != "pending" || got[0].LastIssuedExpiry.Before(t0.Add(130*time.Minute)) {
		t.Fatalf("reopened status = %+v", got)
	}

	// After the grace period the new root issues.
	clock.Advance(50 * time.Minute) // t0+1h
	newCert := sign(time.Hour)
	if issuedBy(newCert).Equal(root1) {
		t.Fatal("after the grace period the new root must issue")
	}
	root2 := issuedBy(newCert)
	if got := states(); len(got) != 2 || got[0] != "retiring" || got[1] != "issuing" {
		t.Fatalf("states = %v, want [retiring issuing]", got)
	}

	// TLS between a holder of an old-root certificate and a holder of a
	// new-root certificate, both trusting the two-root bundle.
	// (oldTLS was issued by root 1 before the switch.)
	newTLS := signWithKeyAny(t, a, mustID(t, "default", "server"))
	if !issuedByRoot(t, a, newTLS, root2) || !issuedByRoot(t, a, oldTLS, root1) {
		t.Fatal("test certificates are not under the expected roots")
	}
	if err := handshake(t, a.Bundle(), clock, oldTLS, newTLS); err != nil {
		t.Fatalf("handshake old-root client -> new-root server: %v", err)
	}
	// A peer that trusts only the new root refuses the old certificate.
	onlyNew, err := identity.NewBundle(td, root2)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, onlyNew, clock, oldTLS, newTLS); err == nil {
		t.Fatal("handshake with an old-root client succeeded against a new-root-only bundle")
	}

	// The old root stays until its last certificate has expired...
	clock.Advance(70*time.Minute - time.Second) // t0+2h10m-1s
	if !a.Bundle().Contains(root1) {
		t.Fatal("old root left the bundle while a certificate it signed was still valid")
	}
	// ... and leaves right after.
	clock.Advance(time.Second)
	b := a.Bundle()
	if b.Contains(root1) || !b.Contains(root2) || b.Len() != 1 {
		t.Fatalf("bundle after the last old certificate expired: %v", b.Info())
	}
	select {
	case got := <-updates:
		if got.Contains(root1) {
			t.Error("pushed bundle still holds the old root")
		}
	default:
		t.Error("no bundle update when the old root left")
	}
	if _, err := os.Stat(filepath.Join(dir, retiredDir, "1", fileRootCert)); err != nil {
		t.Errorf("retired root not archived: %v", err)
	}
	re, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !re.Bundle().Equal(b) {
		t.Error("reopened CA has another bundle after retirement")
	}
}

func issuedByRoot(t *testing.T, a *Authority, c tls.Certificate, root *x509.Certificate) bool {
	t.Helper()
	b, err := identity.NewBundle(td, root)
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, x)
	}
	_, err = identity.VerifyChain(b, chain, a.opts.Clock())
	return err == nil
}

func signWithKeyAny(t *testing.T, a *Authority, id spiffeIDType) tls.Certificate {
	t.Helper()
	key, csr := newCSR(t, nil)
	chain, err := a.Sign(context.Background(), Request{CSR: csr, ID: id, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain[:len(chain)-1] {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

type staticCert struct{ c *tls.Certificate }

func (s staticCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.c, nil }
func (s staticCert) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.c, nil
}

// handshake runs a real mTLS handshake on 127.0.0.1 and one byte each way.
func handshake(t *testing.T, bundle *identity.Bundle, clock *fakeClock, client, server tls.Certificate) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCfg := identity.MTLSServerConfig(staticCert{&server}, bundle, clock.Now, identity.AuthorizeMemberOf(td))
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, srvCfg)
		buf := make([]byte, 1)
		if _, err := io.ReadFull(tc, buf); err != nil {
			errc <- err
			return
		}
		_, err = tc.Write(buf)
		errc <- err
	}()
	cliCfg := identity.MTLSClientConfig(staticCert{&client}, bundle, clock.Now, identity.AuthorizeID(mustID(t, "default", "server")))
	conn, err := tls.Dial("tcp", ln.Addr().String(), cliCfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{42}); err != nil {
		return err
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	return <-errc
}
