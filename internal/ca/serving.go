package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"time"
)

// ServingCertificate issues a TLS server certificate for DNS names and IP
// addresses, such as the admission webhooks' that the Kubernetes API
// server calls (verified by the mesh roots as the webhook configurations'
// caBundle). The key is made here (ECDSA P-256) and never leaves the
// process; the certificate lives ttl (the CA's default when 0), within
// the signing intermediate's life.
func (a *Authority) ServingCertificate(dnsNames []string, ips []net.IP, ttl time.Duration) (*tls.Certificate, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("ca: serving certificate: no DNS name or IP address")
	}
	if ttl <= 0 {
		ttl = a.opts.DefaultTTL
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	now := a.opts.Clock()
	notAfter := now.Add(ttl)
	a.mu.Lock()
	a.refreshLocked(now)
	g := a.issuer
	if notAfter.After(g.intermediates[0].NotAfter) {
		notAfter = g.intermediates[0].NotAfter
	}
	if !notAfter.After(now) {
		a.mu.Unlock()
		return nil, fmt.Errorf("ca: serving certificate: signing certificate %q expired at %s", g.intermediates[0].Subject, g.intermediates[0].NotAfter)
	}
	a.recordIssuedLocked(g, notAfter)
	a.mu.Unlock()

	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	leaf, err := createCert(tmpl, g.intermediates[0], &key.PublicKey, g.key)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	out := &tls.Certificate{PrivateKey: key, Leaf: leaf, Certificate: [][]byte{leaf.Raw}}
	for _, c := range g.intermediates {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}
