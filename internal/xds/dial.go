package xds

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/identity"
)

// ClientTLS is the TLS config a proxy uses to dial the control plane:
// the server must prove the control plane's SPIFFE ID under bundle.
func ClientTLS(td spiffeid.TrustDomain, bundle func() *identity.Bundle, cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *tls.Config {
	want := identity.ControlPlaneID(td)
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: cert,
		InsecureSkipVerify:   true, // verified below against the SPIFFE bundle
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := identity.VerifyRawChain(bundle(), raw, time.Now())
			if err != nil {
				return err
			}
			if id != want {
				return fmt.Errorf("control plane presented %s, want %s", id, want)
			}
			return nil
		},
	}
}
