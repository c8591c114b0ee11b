package ca

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"palisade.dev/palisade/internal/identity"
)

// Authenticator proves who is calling the CA. It returns ErrNoCredentials
// when the call carries no credential of its kind; any other error refuses
// the call.
type Authenticator interface {
	Authenticate(ctx context.Context) (spiffeid.ID, error)
}

// ErrNoCredentials means an Authenticator found nothing it understands.
var ErrNoCredentials = errors.New("no credentials")

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context) (spiffeid.ID, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context) (spiffeid.ID, error) { return f(ctx) }

// Chain tries each Authenticator in order. The first that finds its kind of
// credential decides, success or failure (fail closed: a bad credential is
// not retried with the next method). A Kubernetes service-account token
// authenticator slots in here as one more element.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context) (spiffeid.ID, error) {
	for _, a := range c {
		id, err := a.Authenticate(ctx)
		if errors.Is(err, ErrNoCredentials) {
			continue
		}
		return id, err
	}
	return spiffeid.ID{}, ErrNoCredentials
}

// CertificateAuthenticator authenticates a caller by the mTLS client
// certificate it presented: a workload holding a valid certificate of this
// mesh may renew the same identity. The chain is verified here, against the
// bundle of the moment, so the TLS server only requests a certificate
// (tls.RequestClientCert).
type CertificateAuthenticator struct {
	Bundle func() *identity.Bundle // current trust bundle
	Clock  func() time.Time        // nil means time.Now
}

// Authenticate implements Authenticator.
func (c CertificateAuthenticator) Authenticate(ctx context.Context) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, ErrNoCredentials
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, ErrNoCredentials
	}
	now := time.Now()
	if c.Clock != nil {
		now = c.Clock()
	}
	id, err := identity.VerifyChain(c.Bundle(), ti.State.PeerCertificates, now)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("ca: client certificate: %w", err)
	}
	if _, _, err := identity.Parse(id); err != nil {
		return spiffeid.ID{}, fmt.Errorf("ca: client certificate: %w", err)
	}
	return id, nil
}
