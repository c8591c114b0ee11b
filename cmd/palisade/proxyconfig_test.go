package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/jwt"
)

func TestPrintJWT(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	v := jwtConfig{Rules: []jwt.RuleInfo{
		{Policy: "workshop/jwt-example", Index: 0, Issuer: "https://dex.example/dex", Audiences: []string{"workshop"},
			Locations: []string{"header Authorization: Bearer "}, Timeout: "5s",
			KeySet: jwt.KeySetStatus{Source: "discovery", URI: "https://dex.example/dex/keys", Keys: 2, FetchedAt: now.Add(-90 * time.Second),
				LastError: "jwks: GET https://dex.example/dex/keys: connection refused"}},
		{Policy: "workshop/jwt-example", Index: 1, Issuer: "testing@secure.istio.io",
			Locations: []string{"header Authorization: Bearer ", "param access_token"}, Timeout: "5s",
			KeySet: jwt.KeySetStatus{Source: "inline", Keys: 1}},
		{Policy: "istio-system/mesh-jwt", Index: 0, Issuer: "https://never.example",
			Locations: []string{"header Authorization: Bearer "}, Timeout: "5s",
			KeySet: jwt.KeySetStatus{Source: "jwksUri", URI: "https://never.example/keys"}},
	}}
	var text strings.Builder
	if err := printJWT(&text, v, "text", now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and three rules:\n%s", text.String())
	}
	for i, want := range [][]string{
		{"RULE", "ISSUER", "KEYS", "FETCHED", "LAST ERROR"},
		{"workshop/jwt-example[0]", "https://dex.example/dex", "workshop", "discovery https://dex.example/dex/keys", "1m30s ago", "connection refused"},
		{"workshop/jwt-example[1]", "testing@secure.istio.io", "param access_token", "inline"},
		{"istio-system/mesh-jwt[0]", "jwksUri https://never.example/keys", " 0 ", "never"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	var js strings.Builder
	if err := printJWT(&js, v, "json", now); err != nil {
		t.Fatal(err)
	}
	var back jwtConfig
	if err := json.Unmarshal([]byte(js.String()), &back); err != nil || len(back.Rules) != 3 || back.Rules[0].KeySet.LastError == "" {
		t.Errorf("-o json does not round-trip: %v %+v", err, back)
	}
	var none strings.Builder
	if err := printJWT(&none, jwtConfig{}, "text", now); err != nil || !strings.Contains(none.String(), "No RequestAuthentication") {
		t.Errorf("no rules: %q %v", none.String(), err)
	}
	if err := printJWT(&none, v, "pem", now); err == nil {
		t.Error("-o pem accepted for jwt")
	}
}
