package ca

import (
	"context"
	"testing"
)

// BenchmarkSign measures workload certificates signed per second, for each
// CA key type (ECDSA P-256, RSA 2048, RSA 4096) and each workload key type
// the proxy makes (palisade-proxy --key-type). The first, an ECDSA CA
// signing an ECDSA key, is the default mesh and the headline figure.
func BenchmarkSign(b *testing.B) {
	leaves := []struct {
		name string
		kt   KeyType
	}{
		{name: "leaf=ec-p256", kt: KeyEC},
		{name: "leaf=rsa-2048", kt: KeyRSA2048},
		{name: "leaf=rsa-4096", kt: KeyRSA4096},
	}
	for _, caKT := range []KeyType{KeyEC, KeyRSA2048, KeyRSA4096} {
		b.Run("ca="+string(caKT), func(b *testing.B) {
			a := newTestAuthority(b, newFakeClock(), caKT)
			id := mustID(b, "default", "sleep")
			for _, leaf := range leaves {
				b.Run(leaf.name, func(b *testing.B) {
					key, err := GenerateKey(leaf.kt)
					if err != nil {
						b.Fatal(err)
					}
					csr := newCSRFor(b, key)
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
		})
	}
}
