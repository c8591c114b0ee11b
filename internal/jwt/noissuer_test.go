package jwt

import (
	"net/http"
	"testing"
	"time"
)

// A rule with a jwksUri and no issuer (Istio 1.27+, istio/istio#56158):
// Envoy does not check the token's iss, only that the rule's keys verify
// it; a rule with an issuer still goes first for its own tokens.
func TestRuleWithoutIssuer(t *testing.T) {
	s := newSigner(t, "rsa", "k1", "RS256")
	other := newSigner(t, "rsa", "k9", "RS256")
	issuerKey := newSigner(t, "p256", "e1", "ES256")
	prov := newProvider(t, s)
	keys := NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)})
	a := mustCompile(t, keys, policy(t, "shop", "jwt", `jwtRules:
- jwksUri: `+prov.srv.URL+`/keys
- issuer: https://pinned.example
  jwks: '`+jwksJSON(t, true, issuerKey)+`'
`))
	for _, c := range []struct {
		name   string
		token  string
		status int
		msg    string
		issuer string
	}{
		{"any iss, verified by the issuer-less rule's keys", s.sign(t, claims("https://anyone.example", nil), nil), 0, "", "https://anyone.example"},
		{"no iss at all", s.sign(t, claims("", map[string]any{"iss": nil}), nil), 0, "", ""},
		{"the pinned issuer's token, verified by its own rule", issuerKey.sign(t, claims("https://pinned.example", nil), nil), 0, "", "https://pinned.example"},
		{"signed by a key neither rule has", other.sign(t, claims("https://anyone.example", nil), nil), http.StatusUnauthorized, MsgKidAlgMismatch, ""},
		{"expired, whatever its iss", s.sign(t, claims("https://anyone.example", map[string]any{"exp": testNow.Add(-2 * time.Hour).Unix()}), nil), http.StatusUnauthorized, MsgExpired, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := a.Authenticate(bearer(c.token))
			if c.status != 0 {
				asError(t, err, c.status, c.msg)
				return
			}
			if err != nil || res == nil {
				t.Fatalf("got %v, %v; want accepted", res, err)
			}
			if res.Issuer != c.issuer || res.Principal != c.issuer+"/alice" {
				t.Errorf("issuer %q principal %q, want %q and %q", res.Issuer, res.Principal, c.issuer, c.issuer+"/alice")
			}
		})
	}
	// Neither issuer nor jwksUri: refused, as Istio's validation refuses it.
	if _, err := Compile([]Policy{policy(t, "shop", "bad", "jwtRules:\n- jwks: '"+jwksJSON(t, true, s)+"'\n")}, testWorkload, "istio-system", keys); err == nil {
		t.Error("a rule with inline jwks and no issuer compiled")
	}
}
