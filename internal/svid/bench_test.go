package svid

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"palisade.dev/palisade/internal/ca"
)

// BenchmarkAgentHeldCertificate measures what the agent allocates to hold
// one certificate (parse the CA's answer, check it, build the TLS and SVID
// views): B/op is the memory per held certificate.
func BenchmarkAgentHeldCertificate(b *testing.B) {
	clock := newFakeClock()
	auth, err := ca.Init(b.TempDir(), ca.Options{TrustDomain: td, Clock: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	id, _ := idFor("default", "sleep")
	chain, err := auth.Sign(context.Background(), ca.Request{CSR: csr, ID: id, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	var pems []string
	for _, c := range chain {
		pems = append(pems, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	a, err := NewAgent(Config{CAAddress: "127.0.0.1:1", CARoots: auth.Bundle(), Clock: clock})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h, err := a.build(pems, key)
		if err != nil {
			b.Fatal(err)
		}
		a.cur.Store(h)
	}
}
