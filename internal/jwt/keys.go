package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// MaxJWKSSize bounds a JSON Web Key Set, inline or fetched.
const MaxJWKSSize = 1 << 20

// maxKeys bounds the number of keys kept from one key set.
const maxKeys = 100

// publicKey is one verification key of a key set.
type publicKey struct {
	kid string
	alg string // "" when the JWK does not restrict it
	pub crypto.PublicKey
}

// keyList is an immutable snapshot of a key set.
type keyList struct {
	keys      []publicKey
	kids      []string
	fetchedAt time.Time
	uri       string // where the keys came from ("" for inline)
}

// parseJWKS reads a JSON Web Key Set and keeps its usable public keys:
// RSA (2048 bits or more), EC P-256/384/521 and Ed25519. Symmetric keys
// are dropped; private keys contribute their public half. Entries that do
// not parse are skipped, as Envoy does; a set without one usable key is
// an error.
func parseJWKS(b []byte) ([]publicKey, error) {
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("jwks is %d bytes, more than %d", len(b), MaxJWKSSize)
	}
	set, err := jwk.Parse(b, jwk.WithIgnoreParseError(true))
	if err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	var out []publicKey
	var skipped []string
	for i := 0; i < set.Len() && len(out) < maxKeys; i++ {
		k, _ := set.Key(i)
		pk, err := toPublicKey(k)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		out = append(out, pk)
	}
	if len(out) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("jwks has no usable public key (%s)", strings.Join(skipped, "; "))
		}
		return nil, errors.New("jwks has no usable public key")
	}
	return out, nil
}

func toPublicKey(k jwk.Key) (publicKey, error) {
	var pk publicKey
	pk.kid, _ = k.KeyID()
	if a, ok := k.Algorithm(); ok {
		pk.alg = a.String()
	}
	if use, ok := k.KeyUsage(); ok && use != "" && use != "sig" {
		return pk, fmt.Errorf("use %q is not sig", use)
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return pk, fmt.Errorf("export: %w", err)
	}
	switch v := raw.(type) {
	case *rsa.PublicKey:
		pk.pub = v
	case *rsa.PrivateKey:
		pk.pub = &v.PublicKey
	case *ecdsa.PublicKey:
		pk.pub = v
	case *ecdsa.PrivateKey:
		pk.pub = &v.PublicKey
	case ed25519.PublicKey:
		pk.pub = v
	case ed25519.PrivateKey:
		pk.pub = v.Public()
	default:
		return pk, fmt.Errorf("key type %T is not a signature public key", raw)
	}
	if pk.alg != "" && !algFitsKey(pk.alg, pk.pub) {
		return pk, fmt.Errorf("alg %q does not fit a %T", pk.alg, pk.pub)
	}
	return pk, nil
}

func newKeyList(keys []publicKey, at time.Time, uri string) *keyList {
	kl := &keyList{keys: keys, fetchedAt: at, uri: uri}
	for _, k := range keys {
		if k.kid != "" {
			kl.kids = append(kl.kids, k.kid)
		}
	}
	sort.Strings(kl.kids)
	return kl
}

// jwsAlgs maps the asymmetric algorithms to jwx's values.
var jwsAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// algFitsKey reports whether alg is a signature algorithm for the key:
// RS*/PS* for RSA, ES256/384/512 for P-256/384/521, EdDSA for Ed25519.
func algFitsKey(alg string, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch k.Curve.Params().Name {
		case "P-256":
			return alg == "ES256"
		case "P-384":
			return alg == "ES384"
		case "P-521":
			return alg == "ES512"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

type verifyOutcome int

const (
	verified verifyOutcome = iota
	noMatchingKey
	badSignature
)

// selects reports whether key k is one Envoy would try for t: a JWK
// without kid matches any kid, a JWK with alg must name the token's alg,
// and the key type must fit the token's alg.
func selects(k publicKey, t *token) bool {
	if t.kid != "" && k.kid != "" && k.kid != t.kid {
		return false
	}
	if k.alg != "" && k.alg != t.alg {
		return false
	}
	return algFitsKey(t.alg, k.pub)
}

// verifyWith checks the token's signature against the keys that select
// it, and returns the key that verified it.
func verifyWith(kl *keyList, t *token) (verifyOutcome, crypto.PublicKey) {
	alg, ok := jwsAlgs[t.alg]
	if !ok { // HMAC: never a public key to verify with
		return noMatchingKey, nil
	}
	matched := false
	for _, k := range kl.keys {
		if !selects(k, t) {
			continue
		}
		matched = true
		if _, err := jws.VerifyCompactFast(k.pub, []byte(t.raw), alg); err == nil {
			return verified, k.pub
		}
	}
	if matched {
		return badSignature, nil
	}
	return noMatchingKey, nil
}
