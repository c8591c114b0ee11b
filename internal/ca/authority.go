package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/identity"
)

// Options configure an Authority. Zero values take Istio's defaults.
type Options struct {
	TrustDomain     spiffeid.TrustDomain // required
	KeyType         KeyType              // CA keys made by Init and RotateRoot; default KeyEC
	DefaultTTL      time.Duration        // workload certificates; default 24h
	MaxTTL          time.Duration        // longest TTL a caller may ask for; default 90 days
	RootTTL         time.Duration        // self-signed roots; default 10 years
	IntermediateTTL time.Duration        // self-signed intermediates; default 5 years
	// RotationGrace is how long a new root stays in the bundle before it
	// starts issuing, so every proxy trusts it first. Default 1h.
	RotationGrace time.Duration
	// PersistSlack bounds state writes: the last expiry issued per root is
	// persisted rounded up by this much, so a burst of issuance costs one
	// write. After a restart an old root may stay up to this long more.
	// Default 10 minutes.
	PersistSlack time.Duration
	Clock        func() time.Time // default time.Now
	Logger       *slog.Logger     // default discards
}

func (o Options) withDefaults() (Options, error) {
	if o.TrustDomain.IsZero() {
		return o, errors.New("trust domain is required")
	}
	kt, err := ParseKeyType(string(o.KeyType))
	if err != nil {
		return o, err
	}
	o.KeyType = kt
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.DefaultTTL, DefaultWorkloadTTL)
	def(&o.MaxTTL, DefaultMaxWorkloadTTL)
	def(&o.RootTTL, DefaultRootTTL)
	def(&o.IntermediateTTL, DefaultIntermediateTTL)
	def(&o.RotationGrace, DefaultRotationGrace)
	def(&o.PersistSlack, 10*time.Minute)
	if o.DefaultTTL > o.MaxTTL {
		return o, fmt.Errorf("default TTL %s exceeds max TTL %s", o.DefaultTTL, o.MaxTTL)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// generation is one root with its issuing intermediate.
type generation struct {
	id            int
	root          *x509.Certificate
	rootKey       crypto.Signer       // nil for a plug-in CA
	intermediates []*x509.Certificate // signing certificate first
	key           crypto.Signer       // signs workload certificates
	created       time.Time
	activeAt      time.Time // starts issuing at this time
	maxNotAfter   time.Time // latest NotAfter issued under this root
	persistedMax  time.Time // what state.json says (>= maxNotAfter)
}

// Authority is the mesh CA: it signs workload certificates and owns the trust
// bundle. It is safe for concurrent use.
type Authority struct {
	opts       Options
	dir        string              // state directory; "" for a plug-in CA
	extraRoots []*x509.Certificate // plug-in: every root of root-cert.pem
	mode       string

	mu     sync.Mutex
	gens   []*generation // oldest first; every one is in the bundle
	issuer *generation
	bundle *identity.Bundle
	subs   map[chan *identity.Bundle]struct{}
}

var _ Signer = (*Authority)(nil)

func newAuthority(opts Options, dir, mode string) *Authority {
	return &Authority{opts: opts, dir: dir, mode: mode, subs: map[chan *identity.Bundle]struct{}{}}
}

// Options returns the effective options, defaults applied.
func (a *Authority) Options() Options { return a.opts }

// Sign issues a workload certificate for req.ID and returns leaf,
// intermediate(s), root.
func (a *Authority) Sign(ctx context.Context, req Request) ([]*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	if req.CSR == nil {
		return nil, fmt.Errorf("ca: sign: %w: no CSR", ErrBadCSR)
	}
	if !req.ID.MemberOf(a.opts.TrustDomain) {
		return nil, fmt.Errorf("ca: sign: identity %q is not in trust domain %q", req.ID, a.opts.TrustDomain)
	}
	if err := checkLeafKey(req.CSR.PublicKey); err != nil {
		return nil, fmt.Errorf("ca: sign: %w: %w", ErrBadCSR, err)
	}
	if err := a.CheckTTL(req.TTL); err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = a.opts.DefaultTTL
	}
	now := a.opts.Clock()
	notAfter := now.Add(ttl)

	// Reserve the expiry under the lock before signing, so a root cannot
	// leave the bundle while one of its certificates is being made.
	a.mu.Lock()
	a.refreshLocked(now)
	g := a.issuer
	if signer := g.intermediates[0]; notAfter.After(signer.NotAfter) {
		notAfter = signer.NotAfter
	}
	if !notAfter.After(now) {
		a.mu.Unlock()
		return nil, fmt.Errorf("ca: sign: signing certificate %q expired at %s", g.intermediates[0].Subject, g.intermediates[0].NotAfter)
	}
	a.recordIssuedLocked(g, notAfter)
	a.mu.Unlock()

	tmpl, err := leafTemplate(req.ID, now.Add(-backdate), notAfter)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	leaf, err := createCert(tmpl, g.intermediates[0], req.CSR.PublicKey, g.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	chain := make([]*x509.Certificate, 0, len(g.intermediates)+2)
	chain = append(chain, leaf)
	chain = append(chain, g.intermediates...)
	return append(chain, g.root), nil
}

// CheckTTL returns ErrTTL when Sign would refuse a request for ttl as
// longer than the max TTL; 0 (the default TTL) always passes. Like
// istiod, the CA refuses such a request rather than shortening it.
func (a *Authority) CheckTTL(ttl time.Duration) error {
	if ttl > a.opts.MaxTTL {
		return fmt.Errorf("%w: requested %s, max %s", ErrTTL, ttl, a.opts.MaxTTL)
	}
	return nil
}

func (a *Authority) recordIssuedLocked(g *generation, notAfter time.Time) {
	if !notAfter.After(g.maxNotAfter) {
		return
	}
	g.maxNotAfter = notAfter
	if a.dir == "" || !notAfter.After(g.persistedMax) {
		return
	}
	prev := g.persistedMax
	g.persistedMax = notAfter.Add(a.opts.PersistSlack)
	if err := a.saveStateLocked(); err != nil {
		g.persistedMax = prev
		a.opts.Logger.Error("ca: persist last expiry issued; the old root may leave the bundle early after a restart", "root", g.id, "err", err)
	}
}

// Bundle is the current trust bundle: every root still needed.
func (a *Authority) Bundle() *identity.Bundle {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked(a.opts.Clock())
	return a.bundle
}

// Subscribe returns a channel that receives the bundle now and after each
// change; a slow reader gets only the latest. cancel stops the updates.
func (a *Authority) Subscribe() (updates <-chan *identity.Bundle, cancel func()) {
	ch := make(chan *identity.Bundle, 1)
	a.mu.Lock()
	a.refreshLocked(a.opts.Clock())
	a.subs[ch] = struct{}{}
	ch <- a.bundle
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		delete(a.subs, ch)
		a.mu.Unlock()
	}
}

func (a *Authority) notifyLocked() {
	for ch := range a.subs {
		select {
		case <-ch:
		default:
		}
		ch <- a.bundle
	}
}

// Refresh applies time-driven changes (a new root starting to issue, an old
// one leaving the bundle) at the clock's current time. Sign, Bundle and
// Subscribe call it too; Run calls it periodically.
func (a *Authority) Refresh() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked(a.opts.Clock())
}

// Run calls Refresh every interval until ctx ends, so that bundle changes are
// pushed even when nothing is being signed.
func (a *Authority) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.Refresh()
		}
	}
}

// rebuildBundleLocked recomputes the bundle and reports whether it changed.
func (a *Authority) rebuildBundleLocked() bool {
	roots := append([]*x509.Certificate(nil), a.extraRoots...)
	for _, g := range a.gens {
		roots = append(roots, g.root)
	}
	b, err := identity.NewBundle(a.opts.TrustDomain, roots...)
	if err != nil {
		// Roots were checked when loaded or made; this cannot happen.
		panic(fmt.Sprintf("ca: rebuild bundle: %v", err))
	}
	if b.Equal(a.bundle) {
		return false
	}
	a.bundle = b
	return true
}
