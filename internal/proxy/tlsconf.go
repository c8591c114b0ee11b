package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/identity"
)

// Certs is the workload's own certificate, rotated in place by its
// owner (see internal/svid): every handshake asks for the current one.
type Certs interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error)
}

// errNoBundle is returned while no trust bundle has been pushed yet.
var errNoBundle = errors.New("proxy: no trust bundle yet")

// verifyPeerChain checks a peer's chain, leaf first, against the
// current trust bundle and returns its SPIFFE ID.
func (p *Proxy) verifyPeerChain(chain []*x509.Certificate) (spiffeid.ID, error) {
	c := p.store.Current()
	if c == nil || c.Bundle == nil {
		return spiffeid.ID{}, errNoBundle
	}
	return identity.VerifyChain(c.Bundle, chain, time.Now())
}

// serverTLS is the inbound mTLS config for one connection: our current
// certificate, a client certificate required and verified against the
// trust bundle, the peer's SPIFFE ID stored in verified. It verifies in
// VerifyConnection, which crypto/tls calls on every handshake, resumed
// ones too, with the chain it has already parsed (or the one the session
// ticket recorded). Tickets are sealed with the key of our current
// certificate (see sessions).
func (p *Proxy) serverTLS(alpn []string, verified *spiffeid.ID) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: p.certs.GetCertificate,
		ClientAuth:     tls.RequireAnyClientCert,
		NextProtos:     alpn,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := p.verifyPeerChain(cs.PeerCertificates)
			if err != nil {
				return err
			}
			*verified = id
			return nil
		},
	}
	if cert, err := p.certs.GetCertificate(&tls.ClientHelloInfo{}); err == nil && cert != nil {
		keys, _ := p.sessions.forCert(cert)
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
		cfg.SetSessionTicketKeys(keys)
	}
	return cfg
}

// istioClientTLS is the outbound ISTIO_MUTUAL config for a connection to
// the endpoint at addr: our certificate, the server verified against the
// trust bundle, and secure naming: its SPIFFE ID must be one the service
// may run as. Sessions resume from the tickets held for our current
// certificate, the same expected identities and the same endpoint; the
// checks run on resumed connections too.
func (p *Proxy) istioClientTLS(u *Upstream, alpn []string, addr string) *tls.Config {
	allowed := u.Identities
	cfg := &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: p.certs.GetClientCertificate,
		// The chain is verified below against the SPIFFE bundle, which
		// crypto/tls's host-name verification cannot do.
		InsecureSkipVerify: true,
		ServerName:         istioSNI(u),
		NextProtos:         append(append(make([]string, 0, len(alpn)+1), alpn...), meshALPN),
		// VerifyConnection, unlike VerifyPeerCertificate, gets the chain
		// crypto/tls has already parsed.
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := p.verifyPeerChain(cs.PeerCertificates)
			if err != nil {
				return err
			}
			if len(allowed) > 0 && !slices.Contains(allowed, id) {
				return fmt.Errorf("proxy: secure naming: server %s is not an identity of %s", id, u.Service)
			}
			if len(allowed) == 0 && id.TrustDomain() != p.store.Current().TrustDomain {
				return fmt.Errorf("proxy: server %s is outside trust domain", id)
			}
			return nil
		},
	}
	if cert, err := p.certs.GetClientCertificate(&tls.CertificateRequestInfo{}); err == nil && cert != nil {
		_, cache := p.sessions.forCert(cert)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		td := ""
		if c := p.store.Current(); c != nil {
			td = c.TrustDomain.String()
		}
		cfg.ClientSessionCache = newNamedSessions(cache, u, td, addr)
	}
	return cfg
}

// istioSNI is the SNI Istio's sidecars send to each other.
func istioSNI(u *Upstream) string {
	return fmt.Sprintf("outbound_.%d_._.%s", u.Port, u.Host)
}

// originationTLS builds the client TLS config for a DestinationRule in
// SIMPLE or MUTUAL mode.
func originationTLS(s *networkingv1alpha3.ClientTLSSettings, u *Upstream, alpn []string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.GetSni(), NextProtos: alpn}
	if cfg.ServerName == "" {
		cfg.ServerName = hostOnly(u.Host)
	}
	if ca := s.GetCaCertificates(); ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("proxy: destination rule caCertificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("proxy: destination rule caCertificates %s: no certificates", ca)
		}
		cfg.RootCAs = pool
	}
	if s.GetInsecureSkipVerify().GetValue() {
		cfg.InsecureSkipVerify = true
	}
	if sans := s.GetSubjectAltNames(); len(sans) > 0 && !cfg.InsecureSkipVerify {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			for _, san := range sans {
				if leaf.VerifyHostname(san) == nil {
					return nil
				}
				for _, u := range leaf.URIs {
					if u.String() == san {
						return nil
					}
				}
			}
			return fmt.Errorf("proxy: server certificate matches none of subjectAltNames %v", sans)
		}
	}
	if s.GetMode() == networkingv1alpha3.ClientTLSSettings_MUTUAL {
		cert, err := tls.LoadX509KeyPair(s.GetClientCertificate(), s.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("proxy: destination rule client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func hostOnly(h string) string {
	host, _ := splitHostPort(h, 0)
	return host
}
