package jwt

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAlgorithmsAccepted(t *testing.T) {
	tests := []struct {
		name, kind, alg string
	}{
		{"RS256", "rsa", "RS256"}, {"RS384", "rsa", "RS384"}, {"RS512", "rsa", "RS512"},
		{"PS256", "rsa", "PS256"}, {"PS384", "rsa", "PS384"}, {"PS512", "rsa", "PS512"},
		{"ES256", "p256", "ES256"}, {"ES384", "p384", "ES384"}, {"ES512", "p521", "ES512"},
		{"EdDSA", "ed25519", "EdDSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSigner(t, tt.kind, "alg-"+tt.kind, tt.alg)
			for _, withAlg := range []bool{true, false} {
				p := policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwks: '"+jwksJSON(t, withAlg, s)+"'\n")
				a := mustCompile(t, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}), p)
				res, err := a.Authenticate(bearer(s.sign(t, claims(testIssuer, nil), nil)))
				if err != nil || res == nil {
					t.Fatalf("jwk alg=%v: %v, %v", withAlg, res, err)
				}
				if res.Principal != testIssuer+"/alice" {
					t.Errorf("principal = %q", res.Principal)
				}
			}
		})
	}
}

// Tokens Envoy accepts, and so must Palisade.
func TestEnvoyCompatibleAcceptance(t *testing.T) {
	rs := newSigner(t, "rsa", "k1", "RS256")
	nokid := signer{priv: rs.priv, alg: "RS256"}
	tests := []struct {
		name   string
		jwks   string
		audYAM string
		token  func() string
	}{
		{"iat in the future is not checked", jwksJSON(t, true, rs), "[productapp]", func() string {
			return rs.sign(t, claims(testIssuer, map[string]any{"iat": testNow.Add(time.Hour).Unix()}), nil)
		}},
		{"no exp", jwksJSON(t, true, rs), "[productapp]", func() string { return rs.sign(t, claims(testIssuer, map[string]any{"exp": nil}), nil) }},
		{"exp within the clock skew", jwksJSON(t, true, rs), "[productapp]", func() string {
			return rs.sign(t, claims(testIssuer, map[string]any{"exp": testNow.Add(-59 * time.Second).Unix()}), nil)
		}},
		{"nbf within the clock skew", jwksJSON(t, true, rs), "[productapp]", func() string {
			return rs.sign(t, claims(testIssuer, map[string]any{"nbf": testNow.Add(59 * time.Second).Unix()}), nil)
		}},
		{"fractional exp", jwksJSON(t, true, rs), "[productapp]", func() string {
			return rs.sign(t, claims(testIssuer, map[string]any{"exp": float64(testNow.Add(time.Hour).Unix()) + 0.5}), nil)
		}},
		{"audience with scheme and slash", jwksJSON(t, true, rs), "[productapp]", func() string {
			return rs.sign(t, claims(testIssuer, map[string]any{"aud": "https://productapp/"}), nil)
		}},
		{"one of several audiences", jwksJSON(t, true, rs), "[other, productapp]", func() string {
			return rs.sign(t, claims(testIssuer, map[string]any{"aud": []string{"x", "productapp"}}), nil)
		}},
		{"no audiences configured accepts any", jwksJSON(t, true, rs), "[]", func() string {
			return rs.sign(t, claims(testIssuer, map[string]any{"aud": "anything"}), nil)
		}},
		{"token without kid", jwksJSON(t, true, rs), "[productapp]", func() string { return nokid.sign(t, claims(testIssuer, nil), nil) }},
		{"JWK without kid matches a token kid", jwksJSON(t, false, nokid), "[productapp]", func() string {
			return rs.sign(t, claims(testIssuer, nil), nil)
		}},
		{"unknown header fields ignored", jwksJSON(t, true, rs), "[productapp]", func() string {
			return rs.sign(t, claims(testIssuer, nil), map[string]any{"x5t": "abc", "cty": "JWT"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  audiences: "+tt.audYAM+"\n  jwks: '"+tt.jwks+"'\n")
			a := mustCompile(t, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}), p)
			res, err := a.Authenticate(bearer(tt.token()))
			if err != nil || res == nil {
				t.Fatalf("got %v, %v; want accepted", res, err)
			}
		})
	}
}

func TestLocationsAndOutputs(t *testing.T) {
	rs := newSigner(t, "rsa", "k1", "RS256")
	other := newSigner(t, "p256", "o1", "ES256")
	const otherIss = "https://other.example.com"
	p := policy(t, "shop", "jwt", `
jwtRules:
- issuer: `+testIssuer+`
  jwks: '`+jwksJSON(t, true, rs)+`'
  fromHeaders:
  - {name: x-jwt-assertion, prefix: "Token "}
  - {name: x-raw-jwt}
  fromParams: [jwt]
  fromCookies: [session]
  outputPayloadToHeader: x-jwt-payload
  outputClaimToHeaders:
  - {header: x-jwt-sub, claim: sub}
  - {header: x-jwt-tier, claim: plan.tier}
  - {header: x-jwt-admin, claim: admin}
  - {header: x-jwt-n, claim: "n"}
  - {header: x-jwt-groups, claim: groups}
- issuer: `+otherIss+`
  forwardOriginalToken: true
  jwks: '`+jwksJSON(t, true, other)+`'
`)
	a := mustCompile(t, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}), p)
	c := claims(testIssuer, map[string]any{"plan": map[string]any{"tier": "gold"}, "admin": true, "n": 42, "groups": []string{"a", "b"}, "azp": "web"})
	tok := rs.sign(t, c, nil)
	otherTok := other.sign(t, claims(otherIss, map[string]any{"sub": "bob"}), nil)

	tests := []struct {
		name      string
		req       func() *http.Request
		principal string
		gone      func(r *http.Request) bool // the token no longer reaches the app
		kept      func(r *http.Request) bool // other request data is intact
	}{
		{"custom header with prefix", func() *http.Request {
			r := bearer("")
			r.Header.Set("X-Jwt-Assertion", "Token "+tok)
			return r
		}, testIssuer + "/alice", func(r *http.Request) bool { return r.Header.Get("X-Jwt-Assertion") == "" }, nil},
		{"header without prefix configured", func() *http.Request {
			r := bearer("")
			r.Header.Set("x-raw-jwt", tok)
			return r
		}, testIssuer + "/alice", func(r *http.Request) bool { return r.Header.Get("X-Raw-Jwt") == "" }, nil},
		{"query parameter", func() *http.Request {
			r := bearer("")
			r.URL.RawQuery = "a=1&jwt=" + tok + "&b=%20x"
			return r
		}, testIssuer + "/alice", func(r *http.Request) bool { return !strings.Contains(r.URL.RawQuery, "jwt=") },
			func(r *http.Request) bool { return r.URL.RawQuery == "a=1&b=%20x" }},
		{"cookie", func() *http.Request {
			r := bearer("")
			r.Header.Set("Cookie", "theme=dark; session="+tok+"; lang=en")
			return r
		}, testIssuer + "/alice", func(r *http.Request) bool { return !strings.Contains(r.Header.Get("Cookie"), "session") },
			func(r *http.Request) bool { return r.Header.Get("Cookie") == "theme=dark; lang=en" }},
		{"second issuer at the default location, forwarded", func() *http.Request { return bearer(otherTok) },
			otherIss + "/bob", func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+otherTok }, nil},
		{"second issuer in the default query parameter", func() *http.Request {
			r := bearer("")
			r.URL.RawQuery = url.Values{"access_token": {otherTok}}.Encode()
			return r
		}, otherIss + "/bob", func(r *http.Request) bool { return r.URL.Query().Get("access_token") == otherTok }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			r.Header.Set("X-Jwt-Sub", "spoofed")
			r.Header.Set("X-Jwt-Payload", "spoofed")
			res, err := a.Authenticate(r)
			if err != nil || res == nil {
				t.Fatalf("got %v, %v", res, err)
			}
			if res.Principal != tt.principal {
				t.Errorf("principal = %q, want %q", res.Principal, tt.principal)
			}
			if !tt.gone(r) {
				t.Error("token location not as the rule says after authentication")
			}
			if tt.kept != nil && !tt.kept(r) {
				t.Errorf("other request data changed: query %q cookie %q", r.URL.RawQuery, r.Header.Get("Cookie"))
			}
			if res.Issuer != testIssuer {
				if r.Header.Get("X-Jwt-Sub") != "" || r.Header.Get("X-Jwt-Payload") != "" {
					t.Errorf("client-sent output headers survived: %q %q", r.Header.Get("X-Jwt-Sub"), r.Header.Get("X-Jwt-Payload"))
				}
				return
			}
			want := map[string]string{
				"X-Jwt-Sub": "alice", "X-Jwt-Tier": "gold", "X-Jwt-Admin": "true", "X-Jwt-N": "42",
				"X-Jwt-Groups":  base64.StdEncoding.EncodeToString([]byte(`["a","b"]`)),
				"X-Jwt-Payload": strings.Split(tok, ".")[1],
			}
			for h, v := range want {
				if got := r.Header.Values(h); len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want [%q]", h, got, v)
				}
			}
			if res.Presenter != "web" || !reflect.DeepEqual(res.Audiences, []string{"productapp"}) {
				t.Errorf("azp %q aud %q", res.Presenter, res.Audiences)
			}
		})
	}

	t.Run("no token: spoofed output headers removed", func(t *testing.T) {
		r := bearer("")
		r.Header.Set("X-Jwt-Sub", "admin")
		res, err := a.Authenticate(r)
		if res != nil || err != nil {
			t.Fatalf("got %v, %v", res, err)
		}
		if r.Header.Get("X-Jwt-Sub") != "" {
			t.Error("X-Jwt-Sub from the client reached the app")
		}
	})
	t.Run("token of one issuer at another issuer's location", func(t *testing.T) {
		r := bearer("")
		r.Header.Set("X-Jwt-Assertion", "Token "+otherTok)
		_, err := a.Authenticate(r)
		asError(t, err, http.StatusUnauthorized, MsgUnknownIssuer)
	})
	t.Run("two valid tokens: the first wins, both removed", func(t *testing.T) {
		r := bearer("")
		r.Header.Set("X-Jwt-Assertion", "Token "+tok)
		r.URL.RawQuery = "jwt=" + tok
		res, err := a.Authenticate(r)
		if err != nil || res.Subject != "alice" {
			t.Fatalf("got %v, %v", res, err)
		}
		if r.Header.Get("X-Jwt-Assertion") != "" || r.URL.RawQuery != "" {
			t.Errorf("tokens left: header %q query %q", r.Header.Get("X-Jwt-Assertion"), r.URL.RawQuery)
		}
	})
}

func TestScopingAndMerging(t *testing.T) {
	rs := newSigner(t, "rsa", "k1", "RS256")
	jwks := jwksJSON(t, true, rs)
	rule := func(iss string) string { return "jwtRules:\n- issuer: " + iss + "\n  jwks: '" + jwks + "'\n" }
	ps := []Policy{
		policy(t, "istio-system", "mesh", rule("https://mesh.example.com")),
		policy(t, "shop", "ns", rule("https://ns.example.com")),
		policy(t, "shop", "selected", "selector:\n  matchLabels: {app: productpage}\n"+rule("https://sel.example.com")),
		policy(t, "shop", "other-app", "selector:\n  matchLabels: {app: reviews}\n"+rule("https://reviews.example.com")),
		policy(t, "billing", "other-ns", rule("https://billing.example.com")),
	}
	a := mustCompile(t, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}), ps...)
	tests := []struct {
		iss  string
		want bool
	}{
		{"https://mesh.example.com", true}, {"https://ns.example.com", true}, {"https://sel.example.com", true},
		{"https://reviews.example.com", false}, {"https://billing.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.iss, func(t *testing.T) {
			res, err := a.Authenticate(bearer(rs.sign(t, claims(tt.iss, nil), nil)))
			if tt.want && (err != nil || res == nil) {
				t.Fatalf("got %v, %v; want accepted", res, err)
			}
			if !tt.want {
				asError(t, err, http.StatusUnauthorized, MsgUnknownIssuer)
			}
		})
	}
	if n := len(a.Rules()); n != 3 {
		t.Errorf("Rules() has %d rules, want 3", n)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, spec, want string
	}{
		{"neither issuer nor jwksUri", "jwtRules:\n- jwks: '{\"keys\":[]}'", "jwtRules[0].issuer: issuer or jwksUri must be set"},
		{"bad jwksUri", "jwtRules:\n- issuer: a\n  jwksUri: file:///etc/keys", "jwtRules[0].jwksUri"},
		{"bad inline jwks", "jwtRules:\n- issuer: a\n  jwks: '{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}'", "jwtRules[0].jwks: jwks has no usable public key"},
		{"issuer not a URL and nothing to discover", "jwtRules:\n- issuer: testing@secure.istio.io", "jwtRules[0].issuer: neither jwks nor jwksUri"},
		{"bad output header", "jwtRules:\n- issuer: https://a\n  outputPayloadToHeader: 'bad header'", "outputPayloadToHeader"},
		{"framing output header", "jwtRules:\n- issuer: https://a\n  outputClaimToHeaders: [{header: content-length, claim: sub}]", "outputClaimToHeaders[0].header"},
		{"claim header twice", "jwtRules:\n- issuer: https://a\n  outputClaimToHeaders: [{header: x-a, claim: sub}, {header: X-A, claim: iss}]", "outputClaimToHeaders[1].header"},
		{"empty claim", "jwtRules:\n- issuer: https://a\n  outputClaimToHeaders: [{header: x-a}]", "outputClaimToHeaders[0].claim: required"},
		{"empty param", "jwtRules:\n- issuer: https://a\n  fromParams: ['']", "fromParams[0]: empty"},
		{"bad header name", "jwtRules:\n- issuer: https://a\n  fromHeaders: [{name: 'a b'}]", "fromHeaders[0].name"},
		{"bad cookie", "jwtRules:\n- issuer: https://a\n  fromCookies: ['a=b']", "fromCookies[0]"},
		{"zero timeout", "jwtRules:\n- issuer: https://a\n  timeout: 0s", "timeout"},
	}
	keys := NewKeyStore(KeyStoreOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]Policy{policy(t, "shop", "bad", tt.spec)}, testWorkload, "istio-system", keys)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "shop/bad") {
				t.Fatalf("err = %v, want it to name shop/bad and %q", err, tt.want)
			}
		})
	}
	t.Run("Validate agrees with Compile", func(t *testing.T) {
		for _, tt := range tests {
			if err := Validate(policy(t, "shop", "bad", tt.spec)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
			}
		}
		if err := Validate(policy(t, "shop", "good", "jwtRules:\n- issuer: https://a\n  jwksUri: https://a/keys")); err != nil {
			t.Errorf("valid policy: %v", err)
		}
	})
	t.Run("every problem reported", func(t *testing.T) {
		_, err := Compile([]Policy{policy(t, "shop", "bad", "jwtRules:\n- fromParams: [a]\n- issuer: https://a\n  fromParams: ['']")}, testWorkload, "istio-system", keys)
		if err == nil || !strings.Contains(err.Error(), "jwtRules[0].issuer") || !strings.Contains(err.Error(), "jwtRules[1].fromParams") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("remote keys need a key store", func(t *testing.T) {
		_, err := Compile([]Policy{policy(t, "shop", "p", "jwtRules:\n- issuer: https://a\n  jwksUri: https://a/keys")}, testWorkload, "istio-system", nil)
		if err == nil {
			t.Fatal("compiled a remote rule without a key store")
		}
	})
}
