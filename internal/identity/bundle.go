package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Bundle is an immutable set of X.509 roots trusted for one trust domain.
// During a root rotation it holds the old and the new root at once. A nil
// *Bundle trusts nothing. Bundle implements x509bundle.Source.
type Bundle struct {
	td    spiffeid.TrustDomain
	roots []*x509.Certificate
}

var _ x509bundle.Source = (*Bundle)(nil)

// NewBundle returns a bundle of the given roots, in order, without
// duplicates. Every root must be a CA certificate.
func NewBundle(td spiffeid.TrustDomain, roots ...*x509.Certificate) (*Bundle, error) {
	if td.IsZero() {
		return nil, errors.New("identity: new bundle: empty trust domain")
	}
	b := &Bundle{td: td}
	for i, r := range roots {
		if r == nil {
			return nil, fmt.Errorf("identity: new bundle: root %d is nil", i)
		}
		if !r.IsCA {
			return nil, fmt.Errorf("identity: new bundle: root %d (%s) is not a CA certificate", i, r.Subject)
		}
		if !b.Contains(r) {
			b.roots = append(b.roots, r)
		}
	}
	if len(b.roots) == 0 {
		return nil, errors.New("identity: new bundle: no roots")
	}
	return b, nil
}

// ParseBundlePEM reads a bundle from PEM CERTIFICATE blocks (Istio's
// root-cert.pem, which may hold several roots). Other block types are an
// error, as is trailing garbage.
func ParseBundlePEM(td spiffeid.TrustDomain, data []byte) (*Bundle, error) {
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("identity: parse bundle: %w", err)
	}
	return NewBundle(td, certs...)
}

// ParseCertificatesPEM parses every CERTIFICATE block of data, in order. It
// fails on any other block type, on non-PEM content between blocks, and on
// input with no certificate at all.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the last PEM block")
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// EncodeCertificatesPEM returns the certificates as concatenated PEM blocks.
func EncodeCertificatesPEM(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// TrustDomain is the bundle's trust domain.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain {
	if b == nil {
		return spiffeid.TrustDomain{}
	}
	return b.td
}

// Roots returns a copy of the roots, oldest first.
func (b *Bundle) Roots() []*x509.Certificate {
	if b == nil {
		return nil
	}
	return append([]*x509.Certificate(nil), b.roots...)
}

// Len is the number of roots.
func (b *Bundle) Len() int {
	if b == nil {
		return 0
	}
	return len(b.roots)
}

// Contains reports whether root is in the bundle.
func (b *Bundle) Contains(root *x509.Certificate) bool {
	if b == nil || root == nil {
		return false
	}
	for _, r := range b.roots {
		if r.Equal(root) {
			return true
		}
	}
	return false
}

// Equal reports whether both bundles hold the same roots in the same trust
// domain, regardless of order.
func (b *Bundle) Equal(o *Bundle) bool {
	if b.Len() != o.Len() || b.TrustDomain() != o.TrustDomain() {
		return false
	}
	for _, r := range o.Roots() {
		if !b.Contains(r) {
			return false
		}
	}
	return true
}

// MarshalPEM returns the roots as concatenated PEM CERTIFICATE blocks, the
// format of Istio's root-cert.pem and of `openssl verify -CAfile`.
func (b *Bundle) MarshalPEM() []byte {
	return EncodeCertificatesPEM(b.Roots())
}

// CertPool returns a fresh pool of the roots.
func (b *Bundle) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range b.Roots() {
		p.AddCert(r)
	}
	return p
}

// X509Bundle converts to go-spiffe's mutable bundle type.
func (b *Bundle) X509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(b.TrustDomain(), b.Roots())
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (b *Bundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if b == nil || td != b.td {
		return nil, fmt.Errorf("identity: no X.509 bundle for trust domain %q", td)
	}
	return b.X509Bundle(), nil
}

// RootInfo is a root's summary, for `palisade ca show` and the admin API.
type RootInfo struct {
	Subject           string    `json:"subject"`
	SHA256Fingerprint string    `json:"sha256Fingerprint"`
	NotBefore         time.Time `json:"notBefore"`
	NotAfter          time.Time `json:"notAfter"`
}

// Info summarises each root, oldest first.
func (b *Bundle) Info() []RootInfo {
	var out []RootInfo
	for _, r := range b.Roots() {
		out = append(out, RootInfo{
			Subject:           r.Subject.String(),
			SHA256Fingerprint: Fingerprint(r),
			NotBefore:         r.NotBefore.UTC(),
			NotAfter:          r.NotAfter.UTC(),
		})
	}
	return out
}

// Fingerprint is the hex SHA-256 of the certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
