package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"
)

// jwtMinter is the harness's own issuer: an ES256 key, its JWKS (inlined
// in the RequestAuthentication) and one token valid for the whole run.
type jwtMinter struct {
	Issuer, JWKS, Token string
}

func newJWTMinter() (*jwtMinter, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := pub.Bytes() // 0x04 || X || Y
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
		"x": b64(raw[1:33]), "y": b64(raw[33:65]),
	}}})
	m := &jwtMinter{Issuer: "https://issuer.bench.local", JWKS: string(jwks)}
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": "bench", "typ": "JWT"})
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": m.Issuer, "sub": "bench-user", "aud": "bench", "group": "bench",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(6 * time.Hour).Unix(),
	})
	signing := b64(hdr) + "." + b64(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		return nil, err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	m.Token = signing + "." + b64(sig)
	return m, nil
}
