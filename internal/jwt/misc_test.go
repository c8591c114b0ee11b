package jwt

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestErrorResponse(t *testing.T) {
	tests := []struct {
		name   string
		err    *Error
		status int
		body   string
		code   string
	}{
		{"expired", &Error{Status: 401, Message: MsgExpired, Reason: "exp 1"}, 401, MsgExpired, `error="invalid_token"`},
		{"audience", &Error{Status: 403, Message: MsgAudienceNotAllowed, Reason: "aud x"}, 403, MsgAudienceNotAllowed, `error="insufficient_scope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.err.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://productpage.shop/api/v1", nil))
			if w.Code != tt.status || w.Body.String() != tt.body {
				t.Errorf("got %d %q", w.Code, w.Body.String())
			}
			want := `Bearer realm="http://productpage.shop/api/v1", ` + tt.code
			if got := w.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}
	t.Run("reason stays out of the body", func(t *testing.T) {
		w := httptest.NewRecorder()
		(&Error{Status: 401, Message: MsgVerificationFails, Reason: "secret detail"}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Body.String() != MsgVerificationFails {
			t.Errorf("body %q", w.Body.String())
		}
	})
}

// Rules of the same issuer are alternatives, as Envoy's requires_any.
func TestSameIssuerRulesAreAlternatives(t *testing.T) {
	rs := newSigner(t, "rsa", "k1", "RS256")
	jwks := jwksJSON(t, true, rs)
	a := mustCompile(t, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}),
		policy(t, "shop", "web", "jwtRules:\n- issuer: "+testIssuer+"\n  audiences: [web]\n  jwks: '"+jwks+"'\n"),
		policy(t, "shop", "mobile", "jwtRules:\n- issuer: "+testIssuer+"\n  audiences: [mobile]\n  jwks: '"+jwks+"'\n"))
	tests := []struct {
		aud, policy string
		status      int
	}{
		{"web", "shop/web", 0}, {"mobile", "shop/mobile", 0}, {"desktop", "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.aud, func(t *testing.T) {
			res, err := a.Authenticate(bearer(rs.sign(t, claims(testIssuer, map[string]any{"aud": tt.aud}), nil)))
			if tt.status != 0 {
				asError(t, err, tt.status, MsgAudienceNotAllowed)
				return
			}
			if err != nil || res.Policy != tt.policy {
				t.Fatalf("got %+v, %v; want policy %s", res, err, tt.policy)
			}
		})
	}
}

func TestRunRefreshesOnInterval(t *testing.T) {
	s := newSigner(t, "rsa", "k1", "RS256")
	prov := newProvider(t, s)
	keys := NewKeyStore(KeyStoreOptions{RefreshInterval: 20 * time.Millisecond})
	mustCompile(t, keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwksUri: "+prov.srv.URL+"/keys\n"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { keys.Run(ctx); close(done) }()
	waitFor(t, func() bool { return prov.hits.Load() >= 3 })
	cancel()
	<-done
	if st := keys.Status(); len(st) != 1 || st[0].Keys != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestRulesDescribeConfig(t *testing.T) {
	s := newSigner(t, "rsa", "k1", "RS256")
	a := mustCompile(t, NewKeyStore(KeyStoreOptions{}), policy(t, "shop", "jwt", `
jwtRules:
- issuer: `+testIssuer+`
  audiences: [b, https://a/]
  jwks: '`+jwksJSON(t, true, s)+`'
  fromHeaders: [{name: x-token, prefix: "T "}]
  fromCookies: [sess]
  outputClaimToHeaders: [{header: x-sub, claim: sub}]
  timeout: 2s
`))
	rs := a.Rules()
	if len(rs) != 1 {
		t.Fatalf("%d rules", len(rs))
	}
	r := rs[0]
	if r.Policy != "shop/jwt" || r.Issuer != testIssuer || r.Timeout != "2s" || r.KeySet.Source != "inline" || r.KeySet.Keys != 1 || r.KeySet.KeyIDs[0] != "k1" {
		t.Errorf("rule = %+v", r)
	}
	if len(r.Audiences) != 2 || r.Audiences[0] != "a" || r.Audiences[1] != "b" {
		t.Errorf("audiences = %q", r.Audiences)
	}
	if len(r.Locations) != 2 || r.Locations[0] != "header X-Token: T " || r.Locations[1] != "cookie sess" {
		t.Errorf("locations = %q", r.Locations)
	}
	if len(r.OutputClaimToHeaders) != 1 || r.OutputClaimToHeaders[0] != "x-sub=sub" {
		t.Errorf("claim headers = %q", r.OutputClaimToHeaders)
	}
}

func TestNoRulesLetsEverythingThrough(t *testing.T) {
	none := mustCompile(t, nil, policy(t, "billing", "elsewhere", "jwtRules:\n- issuer: https://a\n  jwksUri: https://a/keys\n"))
	for name, a := range map[string]*Authenticator{"nil": nil, "no applicable rules": none} {
		t.Run(name, func(t *testing.T) {
			r := bearer("not-a-jwt")
			res, err := a.Authenticate(r)
			if res != nil || err != nil {
				t.Fatalf("got %v, %v", res, err)
			}
			if r.Header.Get("Authorization") != "Bearer not-a-jwt" {
				t.Error("request changed without rules")
			}
		})
	}
}
