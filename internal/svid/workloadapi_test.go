package svid

import (
	"context"
	"crypto/ecdsa"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
)

type ctxWatcher struct{ updates chan *workloadapi.X509Context }

func (w ctxWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.updates <- c }
func (w ctxWatcher) OnX509ContextWatchError(error)                  {}

func TestWorkloadAPIWithGoSpiffeClient(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{RotationGrace: time.Minute})
	a := runAgent(t, c.agentConfig(t, "default", "sleep", &logBuffer{}))
	waitReady(t, a)

	sock := filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- NewWorkloadAPI(a, nil).Serve(ctx, sock) }()
	defer func() { cancel(); <-served }()

	var client *workloadapi.Client
	eventually(t, "the workload API socket", func() bool {
		var err error
		client, err = workloadapi.New(ctx, workloadapi.WithAddr("unix://"+sock))
		if err != nil {
			return false
		}
		fctx, fcancel := context.WithTimeout(ctx, time.Second)
		defer fcancel()
		if _, err := client.FetchX509SVID(fctx); err != nil {
			client.Close()
			return false
		}
		return true
	})
	defer client.Close()

	s, err := client.FetchX509SVID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := a.GetX509SVID()
	if s.ID != held.ID || !s.Certificates[0].Equal(held.Certificates[0]) {
		t.Fatalf("workload API SVID %s differs from the agent's %s", s.ID, held.ID)
	}
	if !s.PrivateKey.Public().(*ecdsa.PublicKey).Equal(held.PrivateKey.Public()) {
		t.Error("workload API key does not match the certificate")
	}
	bundles, err := client.FetchX509Bundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundles.GetX509BundleForTrustDomain(td)
	if err != nil || len(b.X509Authorities()) != 1 {
		t.Fatalf("bundle: %v, %v", b, err)
	}
	if _, _, err := workloadapiVerify(s.Certificates, bundles); err != nil {
		t.Errorf("SVID does not verify against the served bundle: %v", err)
	}

	// Watch: a rotation and a bundle change each stream a new message.
	w := ctxWatcher{updates: make(chan *workloadapi.X509Context, 8)}
	go client.WatchX509Context(ctx, w)
	next := func(what string) *workloadapi.X509Context {
		t.Helper()
		select {
		case u := <-w.updates:
			return u
		case <-time.After(15 * time.Second):
			t.Fatalf("no update for %s", what)
			return nil
		}
	}
	next("the initial state")
	first := held.Certificates[0].SerialNumber
	waitWaiting(t, clock)
	clock.Set(a.RenewAt())
	for {
		u := next("the rotation")
		if u.DefaultSVID().Certificates[0].SerialNumber.Cmp(first) != 0 {
			break
		}
	}
	if _, err := c.ca.RotateRoot(""); err != nil {
		t.Fatal(err)
	}
	a.SetBundle(c.ca.Bundle())
	for {
		u := next("the bundle change")
		nb, _ := u.Bundles.GetX509BundleForTrustDomain(td)
		if nb != nil && len(nb.X509Authorities()) == 2 {
			break
		}
	}
}

func workloadapiVerify(chain []*x509Cert, bundles interface {
	GetX509BundleForTrustDomain(tdT) (*x509Bundle, error)
}) (idT, any, error) {
	id, err := identity.VerifyChain(bundles, chain, time.Time{})
	return id, nil, err
}
