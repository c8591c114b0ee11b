package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// Server serves Istio's IstioCertificateService.CreateCertificate: a caller
// sends a PEM CSR and a validity in seconds, proves its identity through the
// Authenticator, and gets back the chain (leaf, intermediates, root) as
// separate PEM strings, like istiod answers.
type Server struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	signer Signer
	auth   Authenticator
	log    *slog.Logger
	// exactCSR refuses a CSR that asks for another identity than the
	// caller proved, as istiod does, instead of issuing the proved one.
	exactCSR bool
}

// RefuseOtherIdentity makes the server refuse a CSR whose URI SAN is not
// the authenticated identity (istiod's behaviour), instead of issuing the
// authenticated identity. Call before serving.
func (s *Server) RefuseOtherIdentity() { s.exactCSR = true }

// NewServer returns a CA server. logger may be nil.
func NewServer(signer Signer, auth Authenticator, logger *slog.Logger) (*Server, error) {
	if signer == nil || auth == nil {
		return nil, errors.New("ca: new server: a signer and an authenticator are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{signer: signer, auth: auth, log: logger}, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	securityv1alpha1.RegisterIstioCertificateServiceServer(g, s)
}

// TTLChecker is implemented by a Signer that can tell, before the caller
// is authenticated, that it would refuse the validity asked for (Authority
// refuses more than its max TTL).
type TTLChecker interface {
	CheckTTL(ttl time.Duration) error
}

// CreateCertificate implements IstioCertificateServiceServer. The CSR and
// the validity are checked before the caller is authenticated, so a request
// that would be refused anyway does not spend a one-time join token.
func (s *Server) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	csr, err := ParseCSR([]byte(req.GetCsr()))
	if err != nil {
		s.log.Warn("ca: refused certificate request", "reason", err)
		return nil, status.Error(codes.InvalidArgument, "invalid CSR")
	}
	if req.GetValidityDuration() < 0 {
		return nil, status.Error(codes.InvalidArgument, "negative validity_duration")
	}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	if req.GetValidityDuration() > int64(math.MaxInt64/time.Second) {
		ttl = math.MaxInt64 // seconds that overflow a Duration are over any max
	}
	if c, ok := s.signer.(TTLChecker); ok {
		if err := c.CheckTTL(ttl); err != nil {
			s.log.Warn("ca: refused certificate request before authentication", "reason", err)
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	id, err := s.auth.Authenticate(ctx)
	if err != nil {
		s.log.Warn("ca: refused certificate request: authentication failed", "reason", err)
		return nil, status.Error(codes.Unauthenticated, publicAuthReason(err))
	}
	if asked := csrURIs(csr); s.exactCSR && len(asked) > 0 && (len(asked) != 1 || asked[0] != id.String()) {
		s.log.Warn("ca: refused certificate request: the CSR asks for another identity than the caller proved", "asked", asked, "proved", id.String())
		return nil, status.Error(codes.PermissionDenied, "the CSR asks for another identity than the credential proves")
	}
	chain, err := s.signer.Sign(ctx, Request{CSR: csr, ID: id, TTL: ttl})
	switch {
	case errors.Is(err, ErrTTL), errors.Is(err, ErrBadCSR):
		s.log.Warn("ca: refused certificate request", "identity", id.String(), "reason", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrRefused):
		// The issuer's own verdict (a Denied CertificateRequest): the
		// caller is told why, retrying will not help.
		s.log.Warn("ca: issuer refused certificate request", "identity", id.String(), "reason", err)
		return nil, status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Error("ca: sign", "identity", id.String(), "err", err)
		return nil, status.Error(codes.Unavailable, "the issuer did not sign in time; retry later")
	case err != nil:
		s.log.Error("ca: sign", "identity", id.String(), "err", err)
		return nil, status.Error(codes.Internal, "signing failed")
	}
	if asked := csrURIs(csr); len(asked) > 0 && (len(asked) != 1 || asked[0] != id.String()) {
		s.log.Warn("ca: CSR asked for another identity; issued the authenticated one", "asked", asked, "issued", id.String())
	}
	s.log.Info("ca: issued certificate", "identity", id.String(), "serial", chain[0].SerialNumber.Text(16), "notAfter", chain[0].NotAfter)
	out := make([]string, len(chain))
	for i, c := range chain {
		out[i] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return &securityv1alpha1.IstioCertificateResponse{CertChain: out}, nil
}

func csrURIs(csr *x509.CertificateRequest) []string {
	var out []string
	for _, u := range csr.URIs {
		out = append(out, u.String())
	}
	return out
}

// publicAuthReason is what a refused caller is told: the join-token reasons
// verbatim (they help an operator and reveal nothing), otherwise a short
// generic answer; the log has the detail.
func publicAuthReason(err error) string {
	for _, e := range []error{ErrTokenUnknown, ErrTokenUsed, ErrTokenExpired} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if errors.Is(err, ErrNoCredentials) {
		return "no credentials: send a join token or a mesh client certificate"
	}
	return "authentication failed"
}

// ServingCertificate keeps the CA server's own TLS certificate, issued by the
// signer for the control plane's identity and renewed at half its lifetime.
// Proxies dialing the CA check that identity against the mesh roots. While
// the current certificate is valid, renewal runs in the background, so a
// slow or unreachable external issuer never holds up a handshake.
type ServingCertificate struct {
	signer Signer
	id     spiffeid.ID
	ttl    time.Duration
	clock  func() time.Time

	signMu sync.Mutex // one signing at a time

	mu       sync.Mutex
	cur      *tls.Certificate
	renewAt  time.Time
	renewing bool
}

// NewServingCertificate returns a serving certificate source for id (usually
// identity.ControlPlaneID); ttl 0 means the signer's default; a nil clock
// means time.Now.
func NewServingCertificate(signer Signer, id spiffeid.ID, ttl time.Duration, clock func() time.Time) *ServingCertificate {
	if clock == nil {
		clock = time.Now
	}
	return &ServingCertificate{signer: signer, id: id, ttl: ttl, clock: clock}
}

// servingSignTimeout bounds one signing of the serving certificate.
const servingSignTimeout = time.Minute

// GetCertificate implements tls.Config.GetCertificate.
func (c *ServingCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	now, cur := c.clock(), c.cur
	switch {
	case cur != nil && now.Before(c.renewAt):
		c.mu.Unlock()
		return cur, nil
	case cur != nil && now.Before(cur.Leaf.NotAfter):
		if !c.renewing {
			c.renewing = true
			go func() {
				_, err := c.renew()
				c.mu.Lock()
				defer c.mu.Unlock()
				c.renewing = false
				if err != nil { // retry in a while, not on every handshake
					c.renewAt = c.clock().Add(min(10*time.Second, c.cur.Leaf.NotAfter.Sub(c.clock())/4))
				}
			}()
		}
		c.mu.Unlock()
		return cur, nil
	}
	c.mu.Unlock()
	return c.renew()
}

// renew signs a new certificate, unless another caller just did.
func (c *ServingCertificate) renew() (*tls.Certificate, error) {
	c.signMu.Lock()
	defer c.signMu.Unlock()
	c.mu.Lock()
	now, cur := c.clock(), c.cur
	c.mu.Unlock()
	if cur != nil && now.Before(c.renewAtOf(cur, now)) {
		return cur, nil
	}
	csr, key, err := newIdentityCSR(c.id)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), servingSignTimeout)
	defer cancel()
	chain, err := c.signer.Sign(ctx, Request{CSR: csr, ID: c.id, TTL: c.ttl})
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain[:len(chain)-1] { // the root is not sent
		cert.Certificate = append(cert.Certificate, x.Raw)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = cert
	// Half the lifetime from now: NotBefore is backdated, which for a
	// short TTL would make every handshake sign a new certificate.
	c.renewAt = now.Add(chain[0].NotAfter.Sub(now) / 2)
	return cert, nil
}

// renewAtOf is when cur is due: c.renewAt if cur is the current one.
func (c *ServingCertificate) renewAtOf(cur *tls.Certificate, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == cur {
		return c.renewAt
	}
	return now
}

// ServerTLSConfig is the CA server's TLS configuration: its serving
// certificate, and a client certificate requested (not required) so a
// workload renewing can prove itself with it; CertificateAuthenticator
// verifies it against the live bundle.
func ServerTLSConfig(cert *ServingCertificate) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.GetCertificate,
		ClientAuth:     tls.RequestClientCert,
	}
}
