package ca

import (
	"context"
	"testing"
)

// BenchmarkSign measures workload certificates signed per second with an
// ECDSA P-256 and an RSA CA key (ECDSA P-256 workload keys in both).
func BenchmarkSign(b *testing.B) {
	for _, kt := range []KeyType{KeyEC, KeyRSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			a := newTestAuthority(b, newFakeClock(), kt)
			_, csr := newCSR(b, nil)
			id := mustID(b, "default", "sleep")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := a.Sign(ctx, Request{CSR: csr, ID: id}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
