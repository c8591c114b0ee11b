package jwt

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// cacheRig is a remote key set on 127.0.0.1, a KeyStore with a settable
// clock and a cache of size entries, and an Authenticator compiled on it.
type cacheRig struct {
	prov *provider
	clk  *clock
	keys *KeyStore
	a    *Authenticator
}

func newCacheRig(t *testing.T, size int, audiences string, signers ...signer) *cacheRig {
	t.Helper()
	r := &cacheRig{prov: newProvider(t, signers...), clk: &clock{now: testNow}}
	r.keys = NewKeyStore(KeyStoreOptions{Now: r.clk.Now, TokenCacheSize: size, RefreshInterval: time.Hour, MinRefreshInterval: 10 * time.Second})
	r.a = r.compile(t, audiences)
	return r
}

func (r *cacheRig) compile(t *testing.T, audiences string) *Authenticator {
	t.Helper()
	return mustCompile(t, r.keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+
		"\n  audiences: "+audiences+"\n  forwardOriginalToken: true\n  jwksUri: "+r.prov.srv.URL+"/keys\n"))
}

func (r *cacheRig) accept(t *testing.T, a *Authenticator, tok string) *Result {
	t.Helper()
	res, err := a.Authenticate(bearer(tok))
	if err != nil || res == nil {
		t.Fatalf("token rejected: %v, %v", res, err)
	}
	return res
}

func TestTokenCacheRepeatedTokenNotVerifiedAgain(t *testing.T) {
	s := newSigner(t, "p256", "cache-p256", "ES256")
	r := newCacheRig(t, 0, "[productapp]", s)
	tok := s.sign(t, claims(testIssuer, nil), nil)
	first := r.accept(t, r.a, tok)
	if n := r.keys.tokens.len(); n != 1 {
		t.Fatalf("cache holds %d tokens after one verification, want 1", n)
	}
	second := r.accept(t, r.a, tok)
	// The second request is answered from the cached parse: the very same
	// claims, not a decoded copy.
	if reflect.ValueOf(first.Claims).UnsafePointer() != reflect.ValueOf(second.Claims).UnsafePointer() {
		t.Fatal("repeated token was parsed and verified again")
	}
	if first.Principal != second.Principal || second.Principal != testIssuer+"/alice" {
		t.Fatalf("principals %q, %q", first.Principal, second.Principal)
	}
}

func TestTokenCacheExpiryWhileCached(t *testing.T) {
	s := newSigner(t, "p256", "cache-p256", "ES256")
	r := newCacheRig(t, 0, "[productapp]", s)
	tok := s.sign(t, claims(testIssuer, map[string]any{"exp": testNow.Add(10 * time.Minute).Unix()}), nil)
	r.accept(t, r.a, tok)

	// Within exp plus the 60s skew the cached token passes.
	r.clk.advance(10*time.Minute + 59*time.Second)
	r.accept(t, r.a, tok)

	// Past it, the cached token is expired, and dropped.
	r.clk.advance(2 * time.Second)
	_, err := r.a.Authenticate(bearer(tok))
	asError(t, err, http.StatusUnauthorized, MsgExpired)
	if n := r.keys.tokens.len(); n != 0 {
		t.Fatalf("expired token still cached (%d entries)", n)
	}
	_, err = r.a.Authenticate(bearer(tok))
	asError(t, err, http.StatusUnauthorized, MsgExpired)
}

func TestTokenCacheKeyRotationAndRemoval(t *testing.T) {
	old := newSigner(t, "p256", "cache-old", "ES256")
	next := newSigner(t, "rsa", "cache-next", "RS256")
	r := newCacheRig(t, 0, "[productapp]", old)
	tok := old.sign(t, claims(testIssuer, nil), nil)
	r.accept(t, r.a, tok)
	refresh := func() {
		t.Helper()
		r.clk.advance(11 * time.Second)
		if err := r.keys.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	// A rotation that keeps the old key beside the new one: the cached
	// token still stands, and tokens of the new key verify.
	r.prov.set(false, old, next)
	refresh()
	r.accept(t, r.a, tok)
	r.accept(t, r.a, next.sign(t, claims(testIssuer, nil), nil))

	// The old key leaves the key set: its cached token is rejected at the
	// first request after the store sees the new set.
	r.prov.set(false, next)
	refresh()
	_, err := r.a.Authenticate(bearer(tok))
	asError(t, err, http.StatusUnauthorized, MsgKidAlgMismatch)

	// A different key published under the old kid does not verify the
	// cached token either: the key itself must still be there.
	impostor := signer{kid: old.kid, alg: old.alg, priv: testKey(t, "p256", "cache-impostor")}
	r.prov.set(false, impostor)
	refresh()
	_, err = r.a.Authenticate(bearer(tok))
	asError(t, err, http.StatusUnauthorized, MsgVerificationFails)

	// The old key comes back: the token verifies again.
	r.prov.set(false, old)
	refresh()
	r.accept(t, r.a, tok)
}

func TestTokenCacheHitStillChecksTheRule(t *testing.T) {
	s := newSigner(t, "p256", "cache-p256", "ES256")
	r := newCacheRig(t, 0, "[productapp]", s)
	tok := s.sign(t, claims(testIssuer, nil), nil)
	r.accept(t, r.a, tok)

	// Another workload's rule on the same store wants another audience:
	// the cached verification does not make the token acceptable there.
	other := r.compile(t, "[billing]")
	_, err := other.Authenticate(bearer(tok))
	asError(t, err, http.StatusForbidden, MsgAudienceNotAllowed)

	// A token that is not valid yet is never cached, however often sent.
	early := s.sign(t, claims(testIssuer, map[string]any{"nbf": testNow.Add(time.Hour).Unix()}), nil)
	for range 3 {
		_, err := r.a.Authenticate(bearer(early))
		asError(t, err, http.StatusUnauthorized, MsgNotYetValid)
	}
	if n := r.keys.tokens.len(); n != 1 {
		t.Fatalf("cache holds %d tokens, want only the valid one", n)
	}
}

func TestTokenCacheFloodIsBounded(t *testing.T) {
	const size = 8
	s := newSigner(t, "p256", "cache-p256", "ES256")
	r := newCacheRig(t, size, "[productapp]", s)
	good := s.sign(t, claims(testIssuer, map[string]any{"sub": "good"}), nil)
	r.accept(t, r.a, good)

	// Forged tokens (a valid token's header and payload with another
	// signature, and tokens of a key the issuer never published) are
	// rejected and never enter the cache: the good token stays.
	h, p, _ := strings.Cut(good, ".")
	p, _, _ = strings.Cut(p, ".")
	stranger := newSigner(t, "p256", "cache-stranger", "ES256")
	stranger.kid = s.kid
	for i := range 200 {
		forged := stranger.sign(t, claims(testIssuer, map[string]any{"sub": fmt.Sprint("forged-", i)}), nil)
		if i%2 == 0 {
			forged = h + "." + p + forged[strings.LastIndex(forged, "."):]
		}
		_, err := r.a.Authenticate(bearer(forged))
		asError(t, err, http.StatusUnauthorized, MsgVerificationFails)
	}
	if n := r.keys.tokens.len(); n != 1 {
		t.Fatalf("forged tokens entered the cache: %d entries", n)
	}
	if _, ok := r.keys.tokens.get(good, r.clk.Now()); !ok {
		t.Fatal("the good token was evicted by forged ones")
	}

	// Validly signed tokens beyond the bound evict the least recently
	// used; the cache never grows past its size.
	for i := range 5 * size {
		r.accept(t, r.a, s.sign(t, claims(testIssuer, map[string]any{"sub": fmt.Sprint("user-", i)}), nil))
		if n := r.keys.tokens.len(); n > size {
			t.Fatalf("cache holds %d tokens, bound is %d", n, size)
		}
	}
	if _, ok := r.keys.tokens.get(good, r.clk.Now()); ok {
		t.Fatal("least recently used token survived a full turnover")
	}

	// A token longer than MaxCachedTokenSize is verified every time and
	// never held.
	big := s.sign(t, claims(testIssuer, map[string]any{"pad": strings.Repeat("x", MaxCachedTokenSize)}), nil)
	before := r.keys.tokens.len()
	r.accept(t, r.a, big)
	if _, ok := r.keys.tokens.get(big, r.clk.Now()); ok || r.keys.tokens.len() != before {
		t.Fatal("oversized token was cached")
	}
}

func TestTokenCacheOff(t *testing.T) {
	s := newSigner(t, "p256", "cache-p256", "ES256")
	r := newCacheRig(t, -1, "[productapp]", s)
	tok := s.sign(t, claims(testIssuer, nil), nil)
	first := r.accept(t, r.a, tok)
	second := r.accept(t, r.a, tok)
	if r.keys.tokens != nil {
		t.Fatal("TokenCacheSize -1 made a cache")
	}
	if reflect.ValueOf(first.Claims).UnsafePointer() == reflect.ValueOf(second.Claims).UnsafePointer() {
		t.Fatal("with caching off a token was not parsed again")
	}
}
