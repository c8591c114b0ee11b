package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/identity"
)

// Request asks for a workload certificate. CSR has been parsed and its
// signature checked (ParseCSR); only its public key is used. ID is the
// identity the caller proved, the one and only URI SAN of the result.
type Request struct {
	CSR *x509.CertificateRequest
	ID  spiffeid.ID
	TTL time.Duration // 0 means the signer's default
}

// Signer issues workload certificates. Sign returns the full chain: leaf,
// intermediate(s), root last (as Istio's CA returns it). Bundle is the trust
// bundle that verifies what Sign returns, possibly holding several roots.
type Signer interface {
	Sign(ctx context.Context, req Request) ([]*x509.Certificate, error)
	Bundle() *identity.Bundle
}

// ErrTTL marks a requested validity longer than the CA allows; the server
// maps it to InvalidArgument, as Istio does.
var ErrTTL = errors.New("requested TTL exceeds the maximum allowed TTL")

// Defaults follow Istio: workload certificates live 24h, at most 90 days;
// a self-signed root lives 10 years.
const (
	DefaultWorkloadTTL     = 24 * time.Hour
	DefaultMaxWorkloadTTL  = 90 * 24 * time.Hour
	DefaultRootTTL         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateTTL = 5 * 365 * 24 * time.Hour
	DefaultRotationGrace   = time.Hour
)
