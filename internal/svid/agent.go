package svid

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"palisade.dev/palisade/internal/identity"
)

// Config configures an Agent.
type Config struct {
	// CAAddress is the control plane's CA, host:port, reached over TLS.
	CAAddress string
	// CARoots are the mesh roots the agent starts with. The CA's serving
	// certificate is issued under them for CAIdentity, so they verify the
	// CA; they are also the first trust bundle, until SetBundle.
	CARoots *identity.Bundle
	// CAIdentity is the SPIFFE ID the CA must present. Default:
	// spiffe://<td>/ns/istio-system/sa/palisade-control-plane.
	CAIdentity spiffeid.ID
	// JoinToken proves the workload's identity for its first certificate.
	// Later renewals authenticate with the current certificate.
	JoinToken string
	// TokenFile, if set, holds a Kubernetes service-account token (the
	// projected istio-token) sent on every request, as Istio's agent
	// does; it is read again for each one, since the kubelet rotates it.
	TokenFile string
	// ID, if set, is asked for in the CSR and required in the answer.
	ID spiffeid.ID
	// TTL is the validity asked for; 0 leaves it to the CA (24h by default).
	TTL time.Duration
	// KeyType of the key made for each certificate; default KeyECP256.
	KeyType KeyType
	// RenewFraction of the lifetime after which to renew; default 0.5.
	RenewFraction float64
	// Jitter renews up to this fraction of the lifetime earlier, at random,
	// so that proxies started together do not renew together; default 0.05.
	Jitter float64
	// MinBackoff and MaxBackoff bound the retry delay; default 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds one CreateCertificate call; default 10s.
	RequestTimeout time.Duration
	Clock          Clock                 // default RealClock
	Logger         *slog.Logger          // default discards
	Registerer     prometheus.Registerer // optional
	DialOptions    []grpc.DialOption     // extra options, e.g. connect backoff
}

// held is one certificate with its key, immutable once made.
type held struct {
	svid    *x509svid.SVID
	tls     *tls.Certificate
	chain   []*x509.Certificate // leaf, intermediates, root as the CA sent it
	renewAt time.Time
}

// Agent holds the workload's certificate and trust bundle and keeps the
// certificate fresh. Reads (TLS handshakes, Workload API) are lock-free.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	dialOpts []grpc.DialOption

	cur    atomic.Pointer[held]
	bundle atomic.Pointer[identity.Bundle]
	ready  chan struct{}
	once   sync.Once

	mu   sync.Mutex
	subs map[chan struct{}]struct{}

	expiry   prometheus.Gauge
	renewals *prometheus.CounterVec
}

var (
	_ x509svid.Source            = (*Agent)(nil)
	_ x509bundle.Source          = (*Agent)(nil)
	_ identity.CertificateSource = (*Agent)(nil)
)

// NewAgent checks cfg and prepares the connection to the CA; Run obtains
// and renews the certificate.
func NewAgent(cfg Config) (*Agent, error) {
	if cfg.CAAddress == "" || cfg.CARoots.Len() == 0 {
		return nil, errors.New("svid: new agent: CA address and CA roots are required")
	}
	if cfg.CAIdentity.IsZero() {
		cfg.CAIdentity = identity.ControlPlaneID(cfg.CARoots.TrustDomain())
	}
	if cfg.RenewFraction == 0 {
		cfg.RenewFraction = 0.5
	}
	if cfg.RenewFraction <= 0 || cfg.RenewFraction >= 1 {
		return nil, fmt.Errorf("svid: new agent: renew fraction %v must be in (0, 1)", cfg.RenewFraction)
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = 0.05
	}
	if cfg.Jitter < 0 || cfg.Jitter >= cfg.RenewFraction {
		return nil, fmt.Errorf("svid: new agent: jitter %v must be in [0, renew fraction)", cfg.Jitter)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("svid: new agent: negative TTL %s", cfg.TTL)
	}
	kt, err := ParseKeyType(string(cfg.KeyType))
	if err != nil {
		return nil, fmt.Errorf("svid: new agent: %w", err)
	}
	cfg.KeyType = kt
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), subs: map[chan struct{}]struct{}{}}
	a.bundle.Store(cfg.CARoots)
	a.expiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "palisade_svid_expiry_timestamp_seconds",
		Help: "Unix time at which the workload certificate held by the proxy expires.",
	})
	a.renewals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "palisade_svid_renewals_total",
		Help: "Certificate requests to the CA, by result.",
	}, []string{"result"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{a.expiry, a.renewals} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("svid: new agent: register metrics: %w", err)
			}
		}
	}
	// The CA is verified against the live bundle and must be CAIdentity;
	// the client certificate, once there is one, proves who is renewing.
	tlsCfg := identity.TLSClientConfig(a, cfg.Clock.Now, identity.AuthorizeID(cfg.CAIdentity))
	tlsCfg.GetClientCertificate = a.clientCertForCA
	a.dialOpts = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}, cfg.DialOptions...)
	return a, nil
}

// Close releases resources; the agent holds no connection between
// requests, so it has nothing to release today.
func (a *Agent) Close() error { return nil }

// Ready is closed once the first certificate is held.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// RenewAt is when the agent plans to renew the current certificate (zero
// before the first one).
func (a *Agent) RenewAt() time.Time {
	if h := a.cur.Load(); h != nil {
		return h.renewAt
	}
	return time.Time{}
}

// Chain returns the current chain as the CA sent it (leaf, intermediates,
// root), or nil before the first certificate.
func (a *Agent) Chain() []*x509.Certificate {
	if h := a.cur.Load(); h != nil {
		return append([]*x509.Certificate(nil), h.chain...)
	}
	return nil
}

// GetX509SVID implements x509svid.Source.
func (a *Agent) GetX509SVID() (*x509svid.SVID, error) {
	h := a.cur.Load()
	if h == nil {
		return nil, errors.New("svid: no certificate yet")
	}
	return h.svid, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (a *Agent) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	h := a.cur.Load()
	if h == nil {
		return nil, errors.New("svid: no certificate yet")
	}
	return h.tls, nil
}

// GetClientCertificate implements tls.Config.GetClientCertificate.
func (a *Agent) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	h := a.cur.Load()
	if h == nil {
		return nil, errors.New("svid: no certificate yet")
	}
	return h.tls, nil
}

// clientCertForCA presents the current certificate to the CA while it is
// valid; otherwise none, and the join token speaks.
func (a *Agent) clientCertForCA(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if h := a.cur.Load(); h != nil && a.cfg.Clock.Now().Before(h.tls.Leaf.NotAfter) {
		return h.tls, nil
	}
	return &tls.Certificate{}, nil
}

// SetBundle installs the trust bundle pushed by the control plane.
func (a *Agent) SetBundle(b *identity.Bundle) {
	if b.Len() == 0 {
		a.log.Error("svid: ignored an empty trust bundle")
		return
	}
	if old := a.bundle.Swap(b); !old.Equal(b) {
		a.log.Info("svid: trust bundle updated", "roots", b.Len())
		a.notify()
	}
}

// Bundle is the current trust bundle.
func (a *Agent) Bundle() *identity.Bundle { return a.bundle.Load() }

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (a *Agent) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return a.bundle.Load().GetX509BundleForTrustDomain(td)
}

// Subscribe returns a channel signalled after each certificate or bundle
// change (coalesced); cancel stops it.
func (a *Agent) Subscribe() (changes <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	a.mu.Lock()
	a.subs[ch] = struct{}{}
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		delete(a.subs, ch)
		a.mu.Unlock()
	}
}

func (a *Agent) notify() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ch := range a.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run obtains the first certificate and renews it until ctx ends. While the
// CA cannot be reached it keeps the current certificate and retries with
// exponential backoff, logging WARN, then ERROR as expiry nears.
func (a *Agent) Run(ctx context.Context) error {
	failures := 0
	for {
		if h := a.cur.Load(); h != nil && failures == 0 {
			if wait := h.renewAt.Sub(a.cfg.Clock.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-a.cfg.Clock.After(wait):
				}
			}
		}
		err := a.renew(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			failures = 0
			continue
		}
		a.renewals.WithLabelValues("failure").Inc()
		failures++
		delay := a.backoff(failures)
		a.logFailure(err, delay)
		select {
		case <-ctx.Done():
			return nil
		case <-a.cfg.Clock.After(delay):
		}
	}
}

// backoff is min·2^(n-1), capped at max, with ±20% jitter.
func (a *Agent) backoff(n int) time.Duration {
	d := float64(a.cfg.MinBackoff) * math.Pow(2, float64(min(n-1, 30)))
	d = min(d, float64(a.cfg.MaxBackoff))
	return time.Duration(d * (0.8 + 0.4*mrand.Float64()))
}

func (a *Agent) logFailure(err error, retry time.Duration) {
	h := a.cur.Load()
	if h == nil {
		a.log.Warn("svid: no certificate yet: CA request failed", "err", err, "retryIn", retry)
		return
	}
	now := a.cfg.Clock.Now()
	leaf := h.tls.Leaf
	left := leaf.NotAfter.Sub(now)
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	attrs := []any{"err", err, "identity", h.svid.ID.String(), "expiresIn", left.Round(time.Second), "notAfter", leaf.NotAfter, "retryIn", retry}
	switch {
	case left <= 0:
		a.log.Error("svid: certificate EXPIRED and renewal fails: peers will refuse this workload; serving it until a renewal succeeds (a new join token is needed if the CA no longer accepts it)", attrs...)
	case left < lifetime/4:
		a.log.Error("svid: certificate close to expiry and renewal fails; keeping the current one", attrs...)
	default:
		a.log.Warn("svid: certificate renewal failed; keeping the current one", attrs...)
	}
}

// renew makes a key and CSR, asks the CA, checks the answer and swaps it in.
func (a *Agent) renew(ctx context.Context) error {
	key, err := generateKey(a.cfg.KeyType)
	if err != nil {
		return fmt.Errorf("svid: renew: key: %w", err)
	}
	tmpl := &x509.CertificateRequest{}
	if !a.cfg.ID.IsZero() {
		tmpl.URIs = []*url.URL{a.cfg.ID.URL()}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return fmt.Errorf("svid: renew: csr: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	if a.cfg.TokenFile != "" {
		tok, err := os.ReadFile(a.cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("svid: renew: token: %w", err)
		}
		if t := strings.TrimSpace(string(tok)); t != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t)
		}
	} else if h := a.cur.Load(); (h == nil || !a.cfg.Clock.Now().Before(h.tls.Leaf.NotAfter)) && a.cfg.JoinToken != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.cfg.JoinToken)
	}
	// A fresh connection per request: the TLS handshake must carry the
	// certificate held now (renewals are hours apart, so the cost is nil).
	conn, err := grpc.NewClient(a.cfg.CAAddress, a.dialOpts...)
	if err != nil {
		return fmt.Errorf("svid: renew: dial %s: %w", a.cfg.CAAddress, err)
	}
	defer conn.Close()
	resp, err := securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
		Csr:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		ValidityDuration: int64(a.cfg.TTL / time.Second),
	})
	if err != nil {
		return fmt.Errorf("svid: renew: %w", err)
	}
	h, err := a.build(resp.GetCertChain(), key)
	if err != nil {
		return fmt.Errorf("svid: renew: %w", err)
	}
	if old := a.cur.Load(); old != nil && old.svid.ID != h.svid.ID {
		return fmt.Errorf("svid: renew: CA issued %s, the agent holds %s", h.svid.ID, old.svid.ID)
	}
	a.renewals.WithLabelValues("success").Inc()
	a.cur.Store(h)
	a.expiry.Set(float64(h.tls.Leaf.NotAfter.Unix()))
	a.once.Do(func() { close(a.ready) })
	a.log.Info("svid: certificate installed", "identity", h.svid.ID.String(), "keyType", a.cfg.KeyType, "serial", h.tls.Leaf.SerialNumber.Text(16),
		"notAfter", h.tls.Leaf.NotAfter, "renewAt", h.renewAt)
	a.notify()
	return nil
}

// build checks a CA answer against the key and the trust bundle and makes
// the held value.
func (a *Agent) build(pems []string, key crypto.Signer) (*held, error) {
	chain, err := identity.ParseCertificatesPEM([]byte(strings.Join(pems, "\n")))
	if err != nil {
		return nil, fmt.Errorf("answer: %w", err)
	}
	leaf := chain[0]
	if !publicKeyEqual(key.Public(), leaf.PublicKey) {
		return nil, errors.New("answer is for another key")
	}
	now := a.cfg.Clock.Now()
	id, err := identity.VerifyChain(a.bundle.Load(), chain, now)
	if err != nil {
		return nil, fmt.Errorf("answer does not verify against the trust bundle: %w", err)
	}
	if !a.cfg.ID.IsZero() && id != a.cfg.ID {
		return nil, fmt.Errorf("CA issued %s, want %s", id, a.cfg.ID)
	}
	// Send leaf and intermediates; peers hold the root.
	send := chain
	if n := len(chain); n > 1 && isSelfSigned(chain[n-1]) {
		send = chain[:n-1]
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range send {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	// The lifetime counts from when the certificate arrived, as Istio's
	// agent counts it, not from NotBefore: the CA backdates NotBefore for
	// clock skew, which for a short-lived certificate (a TTL of a minute,
	// a minute backdated) would put the renewal time in the past at once
	// and renew in a tight loop.
	start := leaf.NotBefore
	if start.Before(now) {
		start = now
	}
	lifetime := leaf.NotAfter.Sub(start)
	early := time.Duration(a.cfg.Jitter * mrand.Float64() * float64(lifetime))
	renewAt := start.Add(time.Duration(a.cfg.RenewFraction*float64(lifetime)) - early)
	return &held{
		svid:    &x509svid.SVID{ID: id, Certificates: send, PrivateKey: key},
		tls:     tc,
		chain:   chain,
		renewAt: renewAt,
	}, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.IsCA && c.CheckSignatureFrom(c) == nil
}
