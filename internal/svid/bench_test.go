package svid

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"runtime"
	"testing"
	"time"

	"palisade.dev/palisade/internal/ca"
)

// BenchmarkAgentHeldCertificate measures, per workload key type, the
// memory one held certificate keeps alive: its key, the parsed chain and
// the TLS and SVID views the agent builds. retained-B/cert is the live heap
// grown by holding heldCerts of them at once, after a GC, divided by their
// number (what a proxy pays per certificate, and a control plane's test
// harness per simulated proxy). ns/op, B/op and allocs/op are one build of
// the held value from the CA's answer, the cost of a renewal.
func BenchmarkAgentHeldCertificate(b *testing.B) {
	for _, tt := range []struct {
		kt        KeyType
		heldCerts int // enough for the heap's noise to vanish; RSA keys are slow to make
	}{
		{kt: KeyECP256, heldCerts: 512},
		{kt: KeyRSA2048, heldCerts: 64},
	} {
		b.Run(string(tt.kt), func(b *testing.B) {
			clock := newFakeClock()
			auth, err := ca.Init(b.TempDir(), ca.Options{TrustDomain: td, Clock: clock.Now})
			if err != nil {
				b.Fatal(err)
			}
			a, err := NewAgent(Config{CAAddress: "127.0.0.1:1", CARoots: auth.Bundle(), Clock: clock})
			if err != nil {
				b.Fatal(err)
			}
			answer := func() ([]string, crypto.Signer) {
				key, err := generateKey(tt.kt)
				if err != nil {
					b.Fatal(err)
				}
				der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
				if err != nil {
					b.Fatal(err)
				}
				csr, err := x509.ParseCertificateRequest(der)
				if err != nil {
					b.Fatal(err)
				}
				id, _ := idFor("default", "sleep")
				chain, err := auth.Sign(context.Background(), ca.Request{CSR: csr, ID: id, TTL: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				pems := make([]string, len(chain))
				for i, c := range chain {
					pems[i] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
				}
				return pems, key
			}

			retained := retainedPerHeld(b, a, tt.heldCerts, answer)
			if retained <= 0 {
				b.Fatalf("holding %d certificates grew the live heap by %.0f B each; the measurement is broken", tt.heldCerts, retained)
			}

			pems, key := answer()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h, err := a.build(pems, key)
				if err != nil {
					b.Fatal(err)
				}
				a.cur.Store(h)
			}
			// After the loop: b.Loop's first call drops metrics reported before.
			b.ReportMetric(retained, "retained-B/cert")
		})
	}
}

// retainedPerHeld holds n certificates, each with its own key as the agent
// holds it, and returns the live heap they keep per certificate. The CA's
// answers (PEM) and the CSRs are garbage once built, as in the agent.
func retainedPerHeld(b *testing.B, a *Agent, n int, answer func() ([]string, crypto.Signer)) float64 {
	b.Helper()
	held := make([]*held, n)
	before := liveHeap()
	for i := range held {
		pems, key := answer()
		h, err := a.build(pems, key)
		if err != nil {
			b.Fatal(err)
		}
		held[i] = h
	}
	after := liveHeap()
	runtime.KeepAlive(held)
	return float64(int64(after)-int64(before)) / float64(n)
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
