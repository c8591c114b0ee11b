package jwt

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAuthenticate measures one full validation (signature checked on
// every request: the verified-token cache is off) with a warm key cache
// (keys fetched from a JWKS server on 127.0.0.1 before the timer starts).
// Run with -benchmem for allocations per request.
func BenchmarkAuthenticate(b *testing.B) { benchAuthenticate(b, -1) }

// BenchmarkAuthenticateCached is BenchmarkAuthenticate with the
// verified-token cache at its default size: the same token on every
// request, as a client with a keep-alive connection sends it.
func BenchmarkAuthenticateCached(b *testing.B) { benchAuthenticate(b, 0) }

func benchAuthenticate(b *testing.B, cacheSize int) {
	for _, bc := range []struct{ name, kind, alg string }{
		{"RS256", "rsa", "RS256"},
		{"ES256", "p256", "ES256"},
		{"EdDSA", "ed25519", "EdDSA"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSigner(b, bc.kind, "bench-"+bc.kind, bc.alg)
			prov := newProvider(b, s)
			keys := NewKeyStore(KeyStoreOptions{TokenCacheSize: cacheSize})
			// forwardOriginalToken keeps the request unchanged, so one
			// request serves every iteration and only validation counts.
			a := mustCompile(b, keys, policy(b, "shop", "bench", "jwtRules:\n- issuer: "+testIssuer+
				"\n  audiences: [productapp]\n  forwardOriginalToken: true\n  jwksUri: "+prov.srv.URL+"/keys\n"))
			if err := keys.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
			c := claims(testIssuer, map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "groups": []string{"a", "b"}})
			r := bearer(s.sign(b, c, nil))
			if res, err := a.Authenticate(r); err != nil || res == nil {
				b.Fatalf("warm-up: %v, %v", res, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := a.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
			if n := prov.hits.Load(); n != 1 {
				b.Fatalf("%d JWKS fetches during the benchmark, want 1", n)
			}
		})
	}
}

// BenchmarkRejectUnknownIssuer measures the cheapest rejection, which an
// attacker can cause at will.
func BenchmarkRejectUnknownIssuer(b *testing.B) {
	s := newSigner(b, "p256", "bench-p256", "ES256")
	a := mustCompile(b, NewKeyStore(KeyStoreOptions{}), policy(b, "shop", "bench", "jwtRules:\n- issuer: "+testIssuer+"\n  jwks: '"+jwksJSON(b, true, s)+"'\n"))
	r := bearer(s.sign(b, claims("https://other.example.com", nil), nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err == nil {
			b.Fatal("accepted")
		}
	}
}
