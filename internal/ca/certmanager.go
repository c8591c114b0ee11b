package ca

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/identity"
)

// CertificateRequests is cert-manager's cert-manager.io/v1 CertificateRequest.
var CertificateRequests = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificaterequests"}

// IdentitiesAnnotation carries the SPIFFE ID a CertificateRequest is for,
// under the name istio-csr gives it, so approver policies can read it.
const IdentitiesAnnotation = "istio.cert-manager.io/identities"

// IssuerRef names the cert-manager issuer that signs (istio-csr's
// --issuer-name, --issuer-kind, --issuer-group).
type IssuerRef struct {
	Name  string
	Kind  string // Issuer or ClusterIssuer (or an external issuer's kind)
	Group string // cert-manager.io, or an external issuer's group
}

func (r IssuerRef) String() string { return r.Kind + "." + r.Group + "/" + r.Name }

// CertManagerOptions configure a CertManagerSigner.
type CertManagerOptions struct {
	TrustDomain spiffeid.TrustDomain
	Client      dynamic.Interface
	Issuer      IssuerRef
	// Namespace is where CertificateRequests are made (istio-csr's
	// --certificate-namespace; an Issuer must live there).
	Namespace string
	// Roots, when set, is the trust bundle (istio-csr's --root-ca-file):
	// issued chains must lead to it. When nil, the roots come from the
	// issuer's CA (status.ca of the requests it signs), found by Start.
	Roots *identity.Bundle
	// DefaultTTL is the duration asked for when the proxy asks for none;
	// a longer one is capped at MaxTTL (istio-csr's
	// --max-client-certificate-duration, 1h by default).
	DefaultTTL, MaxTTL time.Duration
	// Wait bounds one request from creation to Ready; default 30s.
	Wait time.Duration
	// Preserve keeps finished CertificateRequests instead of deleting them
	// (istio-csr's --preserve-certificate-requests).
	Preserve bool
	Log      *slog.Logger
	Clock    func() time.Time
}

// CertManagerSigner hands each workload CSR to cert-manager as a
// CertificateRequest, in istio-csr's role: any cert-manager issuer (CA,
// Vault, AWS Private CA, Venafi…) then signs mesh certificates. The CSR
// must ask for exactly the authenticated identity, since the issuer signs
// what it asks for; the answer is checked like any external CA's.
type CertManagerSigner struct {
	opts CertManagerOptions

	mu      sync.Mutex
	bundle  *identity.Bundle
	watches []chan *identity.Bundle
}

var _ Signer = (*CertManagerSigner)(nil)

// NewCertManagerSigner checks the options. Without Roots, Start must find
// the issuer's CA before the signer is used.
func NewCertManagerSigner(opts CertManagerOptions) (*CertManagerSigner, error) {
	var errs []error
	if opts.TrustDomain.IsZero() {
		errs = append(errs, errors.New("a trust domain is required"))
	}
	if opts.Roots != nil && opts.Roots.TrustDomain() != opts.TrustDomain {
		errs = append(errs, fmt.Errorf("the root file is for trust domain %q, not %q", opts.Roots.TrustDomain().Name(), opts.TrustDomain.Name()))
	}
	if opts.Client == nil {
		errs = append(errs, errors.New("a Kubernetes client is required"))
	}
	if opts.Issuer.Name == "" || opts.Issuer.Kind == "" || opts.Issuer.Group == "" {
		errs = append(errs, fmt.Errorf("issuer reference %q: name, kind and group are required", opts.Issuer))
	}
	if opts.Namespace == "" {
		errs = append(errs, errors.New("the CertificateRequest namespace is required"))
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = time.Hour
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = opts.MaxTTL
	}
	if opts.DefaultTTL > opts.MaxTTL {
		errs = append(errs, fmt.Errorf("default duration %s exceeds the maximum %s", opts.DefaultTTL, opts.MaxTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ca: cert-manager: %w", err)
	}
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &CertManagerSigner{opts: opts, bundle: opts.Roots}, nil
}

// Issuer says who signs, for `palisade ca show`.
func (s *CertManagerSigner) Issuer() string {
	return fmt.Sprintf("cert-manager %s in namespace %s", s.opts.Issuer, s.opts.Namespace)
}

// Bundle implements Signer: the configured roots, or those the issuer's
// CA has shown so far (nil before Start found one).
func (s *CertManagerSigner) Bundle() *identity.Bundle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundle
}

// Subscribe delivers each new trust bundle (a root change seen at the
// issuer) until cancel.
func (s *CertManagerSigner) Subscribe() (<-chan *identity.Bundle, func()) {
	ch := make(chan *identity.Bundle, 1)
	s.mu.Lock()
	s.watches = append(s.watches, ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.watches = slices.DeleteFunc(s.watches, func(c chan *identity.Bundle) bool { return c == ch })
	}
}

// ErrRefused marks a request the issuer refused for good (Denied, Failed,
// InvalidRequest): the caller gets the reason, and retrying the same
// request will not help.
var ErrRefused = errors.New("certificate request refused")

// Sign implements Signer: one CertificateRequest, created with retries
// until ctx or the Wait bound ends, waited on until Approved and Ready.
func (s *CertManagerSigner) Sign(ctx context.Context, req Request) ([]*x509.Certificate, error) {
	if err := checkCSRIdentity(req); err != nil {
		return nil, fmt.Errorf("ca: cert-manager sign: %w", err)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = s.opts.DefaultTTL
	}
	ttl = min(ttl, s.opts.MaxTTL) // capped, as istio-csr caps it
	ctx, cancel := context.WithTimeout(ctx, s.opts.Wait)
	defer cancel()
	crs := s.opts.Client.Resource(CertificateRequests).Namespace(s.opts.Namespace)
	obj := s.request(req, ttl)
	var created *unstructured.Unstructured
	err := retry(ctx, func() error {
		var err error
		created, err = crs.Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return permanent{err} // the same object will not become valid
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ca: cert-manager sign %s: create CertificateRequest in %s: %w", req.ID, s.opts.Namespace, err)
	}
	name := s.opts.Namespace + "/" + created.GetName()
	s.opts.Log.Info("ca: cert-manager CertificateRequest created", "certificateRequest", name, "identity", req.ID.String(), "issuer", s.opts.Issuer.String(), "duration", ttl.String())
	defer s.finish(crs, created.GetName(), name)

	var st crStatus
	err = retry(ctx, func() error {
		got, err := crs.Get(ctx, created.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if st, err = readStatus(got); err != nil {
			return permanent{err}
		}
		if st.done() {
			return nil
		}
		return errNotReady
	})
	switch {
	case errors.Is(err, ErrRefused):
		s.opts.Log.Warn("ca: cert-manager CertificateRequest refused", "certificateRequest", name, "identity", req.ID.String(), "reason", err)
		return nil, fmt.Errorf("ca: cert-manager: CertificateRequest %s: %w", name, err)
	case err != nil:
		return nil, fmt.Errorf("ca: cert-manager: CertificateRequest %s not issued within %s (is issuer %s up?): %w", name, s.opts.Wait, s.opts.Issuer, err)
	}
	chain, err := s.chainOf(st, req)
	if err != nil {
		return nil, fmt.Errorf("ca: cert-manager: CertificateRequest %s: answer refused: %w", name, err)
	}
	s.opts.Log.Info("ca: cert-manager CertificateRequest issued", "certificateRequest", name, "identity", req.ID.String(),
		"issuer", chain[0].Issuer.String(), "serial", chain[0].SerialNumber.Text(16), "notAfter", chain[0].NotAfter)
	return chain, nil
}

func (s *CertManagerSigner) request(req Request, ttl time.Duration) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1",
		"kind":       "CertificateRequest",
		"metadata": map[string]any{
			"generateName": "palisade-",
			"namespace":    s.opts.Namespace,
			"labels":       map[string]any{"app.kubernetes.io/managed-by": "palisade"},
			"annotations":  map[string]any{IdentitiesAnnotation: req.ID.String()},
		},
		"spec": map[string]any{
			// []byte in cert-manager's Go type: base64 on the wire.
			"request":  base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
			"duration": ttl.String(),
			"isCA":     false,
			"usages":   []any{"client auth", "server auth", "digital signature", "key encipherment"},
			"issuerRef": map[string]any{
				"name": s.opts.Issuer.Name, "kind": s.opts.Issuer.Kind, "group": s.opts.Issuer.Group,
			},
		},
	}}
}

// finish deletes a finished request unless Preserve; a failure to delete
// only costs a stale object, so it is logged, not returned.
func (s *CertManagerSigner) finish(crs dynamic.ResourceInterface, short, name string) {
	if s.opts.Preserve {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := crs.Delete(ctx, short, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		s.opts.Log.Warn("ca: cert-manager CertificateRequest not deleted", "certificateRequest", name, "err", err)
	}
}

// chainOf checks the issued certificate and returns leaf, intermediates,
// root. A CA seen in status.ca that is not yet trusted is adopted only
// when no roots were configured.
func (s *CertManagerSigner) chainOf(st crStatus, req Request) ([]*x509.Certificate, error) {
	certs, err := identity.ParseCertificatesPEM(st.certificate)
	if err != nil {
		return nil, fmt.Errorf("status.certificate: %w", err)
	}
	var ca []*x509.Certificate
	if len(st.ca) > 0 {
		if ca, err = identity.ParseCertificatesPEM(st.ca); err != nil {
			return nil, fmt.Errorf("status.ca: %w", err)
		}
	}
	if s.opts.Roots == nil && len(ca) > 0 { // roots from the issuer
		s.adopt(ca)
	}
	bundle := s.Bundle()
	if bundle == nil {
		return nil, errors.New("no trust bundle: the issuer sent no status.ca and no root file is configured")
	}
	leaf, rest := certs[0], certs[1:]
	if err := checkIssued(leaf, req, bundle, rest, s.opts.Clock()); err != nil {
		return nil, err
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: bundle.CertPool(), Intermediates: poolOf(rest),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: s.opts.Clock(),
	})
	if err != nil {
		return nil, err
	}
	return chains[0], nil
}

// adopt makes the issuer's CA the trust bundle; when it changes, the new
// roots come first and the previous ones stay, so certificates issued
// under them keep verifying while proxies renew.
func (s *CertManagerSigner) adopt(roots []*x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.bundle
	if cur != nil && !slices.ContainsFunc(roots, func(r *x509.Certificate) bool { return !cur.Contains(r) }) {
		return
	}
	all := roots
	if cur != nil {
		all = append(slices.Clone(roots), cur.Roots()...)
	}
	b, err := identity.NewBundle(s.opts.TrustDomain, all...)
	if err != nil {
		s.opts.Log.Error("ca: cert-manager: the issuer's CA is not a usable root; trust bundle unchanged", "err", err)
		return
	}
	s.opts.Log.Info("ca: cert-manager: trust bundle from the issuer's CA", "roots", b.Len(), "sha256", identity.Fingerprint(roots[0]))
	s.setLocked(b)
}

// SetRoots replaces the trust bundle (a changed root file) and tells
// subscribers; the same roots again change nothing.
func (s *CertManagerSigner) SetRoots(b *identity.Bundle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setLocked(b)
}

func (s *CertManagerSigner) setLocked(b *identity.Bundle) {
	if b == nil || b.TrustDomain() != s.opts.TrustDomain || b.Equal(s.bundle) {
		return
	}
	s.bundle = b
	for _, ch := range s.watches {
		select {
		case <-ch:
		default:
		}
		ch <- b
	}
}

// Start makes the first CertificateRequest, for the control plane's own
// identity, so that the trust bundle is known (istio-csr discovers its
// roots the same way when no root file is given). It retries until ctx
// ends.
func (s *CertManagerSigner) Start(ctx context.Context, id spiffeid.ID) error {
	csr, _, err := newIdentityCSR(id)
	if err != nil {
		return fmt.Errorf("ca: cert-manager start: %w", err)
	}
	for {
		_, err := s.Sign(ctx, Request{CSR: csr, ID: id})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrRefused) || ctx.Err() != nil:
			return fmt.Errorf("ca: cert-manager start: %w", err)
		}
		s.opts.Log.Warn("ca: cert-manager: first certificate request failed, retrying", "err", err)
	}
}
