package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// backdate is how far before "now" a certificate's NotBefore is set, to
// tolerate clock skew between the CA and its peers.
const backdate = time.Minute

func randomSerial() (*big.Int, error) {
	// 128 random bits, positive, as RFC 5280 and the CA/B forum ask.
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der) //nolint:gosec // RFC 5280 method 1 key identifier, not a security use
	return sum[:], nil
}

// caTemplate is a root (parent nil) or intermediate CA certificate template.
func caTemplate(td spiffeid.TrustDomain, cn string, pub crypto.PublicKey, now time.Time, ttl time.Duration, pathLen int) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{td.Name()}, CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		SubjectKeyId:          ski,
		URIs:                  []*url.URL{td.ID().URL()},
	}, nil
}

// leafTemplate is an X.509 SVID for id: URI SAN = id only, CA:FALSE,
// digitalSignature+keyEncipherment, serverAuth+clientAuth.
func leafTemplate(id spiffeid.ID, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{id.URL()},
	}, nil
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// ErrBadCSR marks a CSR that cannot be signed; the server maps it to
// InvalidArgument.
var ErrBadCSR = errors.New("bad certificate signing request")

// ParseCSR parses a PEM or DER CSR, checks its self-signature and that its key
// is one the mesh accepts (ECDSA P-256/P-384, RSA of at least 2048 bits).
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	der := data
	if b := pemDecode(data, "CERTIFICATE REQUEST"); b != nil {
		der = b
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse csr: %w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("ca: parse csr: %w: signature: %w", ErrBadCSR, err)
	}
	if err := checkLeafKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("ca: parse csr: %w: %w", ErrBadCSR, err)
	}
	return csr, nil
}

func checkLeafKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s not accepted", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too small", k.N.BitLen())
		}
	default:
		return fmt.Errorf("key type %T not accepted", pub)
	}
	return nil
}
