package jwt

import (
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Istio's own sample tokens, validated against Istio's sample JWKS inline.
func TestIstioSampleTokens(t *testing.T) {
	jwks := readFixture(t, "jwks.json")
	p := policy(t, "shop", "jwt-example", `
selector:
  matchLabels: {app: productpage}
jwtRules:
- issuer: testing@secure.istio.io
  jwks: '`+jwks+`'
`)
	keys := NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)})
	a := mustCompile(t, keys, p)

	tests := []struct {
		name    string
		fixture string
		claim   string
		want    any
	}{
		{name: "demo", fixture: "demo.jwt", claim: "foo", want: "bar"},
		{name: "groups-scope", fixture: "groups-scope.jwt", claim: "groups", want: []any{"group1", "group2"}},
		{name: "groups-scope scope", fixture: "groups-scope.jwt", claim: "scope", want: []any{"scope1", "scope2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bearer(readFixture(t, tt.fixture))
			res, err := a.Authenticate(r)
			if err != nil {
				t.Fatal(err)
			}
			if res == nil {
				t.Fatal("no result for a valid token")
			}
			if res.Principal != "testing@secure.istio.io/testing@secure.istio.io" {
				t.Errorf("principal = %q", res.Principal)
			}
			if res.Issuer != "testing@secure.istio.io" || res.Subject != "testing@secure.istio.io" {
				t.Errorf("iss/sub = %q/%q", res.Issuer, res.Subject)
			}
			if got := res.Claims[tt.claim]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("claim %s = %#v, want %#v", tt.claim, got, tt.want)
			}
			if res.Policy != "shop/jwt-example" {
				t.Errorf("policy = %q", res.Policy)
			}
			if r.Header.Get("Authorization") != "" {
				t.Error("token forwarded to the app though forwardOriginalToken is false")
			}
		})
	}

	t.Run("no token passes unauthenticated", func(t *testing.T) {
		res, err := a.Authenticate(bearer(""))
		if res != nil || err != nil {
			t.Fatalf("got %v, %v; want nil, nil", res, err)
		}
	})
	t.Run("demo token after its exp", func(t *testing.T) {
		late := NewKeyStore(KeyStoreOptions{Now: fixedClock(time.Unix(4685989700, 0).Add(61 * time.Second))})
		_, err := mustCompile(t, late, p).Authenticate(bearer(readFixture(t, "demo.jwt")))
		asError(t, err, http.StatusUnauthorized, MsgExpired)
	})
	t.Run("demo token within the clock skew", func(t *testing.T) {
		late := NewKeyStore(KeyStoreOptions{Now: fixedClock(time.Unix(4685989700, 0).Add(59 * time.Second))})
		if _, err := mustCompile(t, late, p).Authenticate(bearer(readFixture(t, "demo.jwt"))); err != nil {
			t.Fatal(err)
		}
	})
}
