package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// VerifyChain verifies a peer's chain (leaf first, then any intermediates)
// against the bundle for the leaf's trust domain at time now, and returns the
// leaf's SPIFFE ID. The leaf must carry exactly one SPIFFE URI SAN and must not
// be a CA. A zero now means the current time.
func VerifyChain(src x509bundle.Source, chain []*x509.Certificate, now time.Time) (spiffeid.ID, error) {
	if src == nil {
		return spiffeid.ID{}, errors.New("identity: verify chain: no trust bundle")
	}
	id, _, err := x509svid.Verify(chain, src, x509svid.WithTime(now))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: verify chain: %w", err)
	}
	return id, nil
}

// VerifyRawChain is VerifyChain for DER certificates as crypto/tls hands them
// to VerifyPeerCertificate.
func VerifyRawChain(src x509bundle.Source, raw [][]byte, now time.Time) (spiffeid.ID, error) {
	chain := make([]*x509.Certificate, 0, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("identity: verify chain: certificate %d: %w", i, err)
		}
		chain = append(chain, c)
	}
	return VerifyChain(src, chain, now)
}

// Authorizer decides whether a verified peer identity may connect.
type Authorizer func(id spiffeid.ID) error

// AuthorizeAny accepts any identity that verified against the bundle.
func AuthorizeAny() Authorizer { return func(spiffeid.ID) error { return nil } }

// AuthorizeID accepts only the listed identities (secure naming).
func AuthorizeID(allowed ...spiffeid.ID) Authorizer {
	return func(id spiffeid.ID) error {
		for _, a := range allowed {
			if a == id {
				return nil
			}
		}
		return fmt.Errorf("identity: peer %s is not an allowed identity", id)
	}
}

// AuthorizeMemberOf accepts any identity of trust domain td.
func AuthorizeMemberOf(td spiffeid.TrustDomain) Authorizer {
	return func(id spiffeid.ID) error {
		if !id.MemberOf(td) {
			return fmt.Errorf("identity: peer %s is not in trust domain %q", id, td)
		}
		return nil
	}
}

// VerifyPeerCertificate returns a function for tls.Config.VerifyPeerCertificate
// that verifies the peer's chain against src (read at each handshake, so a
// bundle update applies to the next connection) at clock's time, then asks
// authorize. Use it with InsecureSkipVerify on clients and
// RequireAnyClientCert on servers: the SPIFFE check replaces hostname checks.
// A nil clock means time.Now; a nil authorize accepts any verified identity.
func VerifyPeerCertificate(src x509bundle.Source, clock func() time.Time, authorize Authorizer) func([][]byte, [][]*x509.Certificate) error {
	if clock == nil {
		clock = time.Now
	}
	if authorize == nil {
		authorize = AuthorizeAny()
	}
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		id, err := VerifyRawChain(src, raw, clock())
		if err != nil {
			return err
		}
		return authorize(id)
	}
}

// PeerID returns the SPIFFE ID of the peer of a handshake that was verified by
// VerifyPeerCertificate.
func PeerID(state tls.ConnectionState) (spiffeid.ID, error) {
	if len(state.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("identity: peer id: no peer certificate")
	}
	id, err := x509svid.IDFromCert(state.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: peer id: %w", err)
	}
	return id, nil
}

// CertificateSource hands crypto/tls the local certificate at each handshake
// (svid.Agent implements it).
type CertificateSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error)
}

// MTLSServerConfig is a TLS server configuration that presents certs'
// current certificate and requires a client certificate verified against
// bundle and accepted by authorize.
func MTLSServerConfig(certs CertificateSource, bundle x509bundle.Source, clock func() time.Time, authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS12,
		GetCertificate:        certs.GetCertificate,
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: VerifyPeerCertificate(bundle, clock, authorize),
	}
}

// MTLSClientConfig is a TLS client configuration that presents certs'
// current certificate and accepts a server verified against bundle and
// accepted by authorize. Hostname checks are replaced by the SPIFFE check.
func MTLSClientConfig(certs CertificateSource, bundle x509bundle.Source, clock func() time.Time, authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS12,
		GetClientCertificate:  certs.GetClientCertificate,
		InsecureSkipVerify:    true, // verified by VerifyPeerCertificate below
		VerifyPeerCertificate: VerifyPeerCertificate(bundle, clock, authorize),
	}
}

// TLSClientConfig is MTLSClientConfig without a client certificate, for a
// first contact with the CA before the workload holds one.
func TLSClientConfig(bundle x509bundle.Source, clock func() time.Time, authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS12,
		InsecureSkipVerify:    true, // verified by VerifyPeerCertificate below
		VerifyPeerCertificate: VerifyPeerCertificate(bundle, clock, authorize),
	}
}
