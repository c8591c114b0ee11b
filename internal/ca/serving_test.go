package ca

import (
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestServingCertificate(t *testing.T) {
	clock := newFakeClock()
	a := newTestAuthority(t, clock, KeyEC)
	cert, err := a.ServingCertificate([]string{"palisade.istio-system.svc"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, r := range a.Bundle().Roots() {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	for _, name := range []string{"palisade.istio-system.svc", "127.0.0.1"} {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter, CurrentTime: clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "other.svc", Roots: roots, Intermediates: inter, CurrentTime: clock.Now()}); err == nil {
		t.Error("verified for a name it does not carry")
	}
	if len(cert.Leaf.URIs) != 0 || cert.Leaf.IsCA {
		t.Errorf("serving certificate has URIs %v, CA %v", cert.Leaf.URIs, cert.Leaf.IsCA)
	}
	if got := cert.Leaf.NotAfter.Sub(clock.Now()); got != time.Hour {
		t.Errorf("lifetime %v, want 1h", got)
	}
	if _, err := a.ServingCertificate(nil, nil, 0); err == nil {
		t.Error("a certificate for no name")
	}
}
