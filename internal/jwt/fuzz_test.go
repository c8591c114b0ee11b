package jwt

import (
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// FuzzAuthenticate feeds arbitrary tokens through the whole path. It must
// never panic, and a token it accepts must carry a signature that an
// independent check (jws.Verify over the JWKS) accepts: no unsigned or
// foreign-signed token passes.
func FuzzAuthenticate(f *testing.F) {
	rs := newSigner(f, "rsa", "fz-rs", "RS256")
	es := newSigner(f, "p256", "fz-es", "ES256")
	evil := newSigner(f, "rsa", "fz-evil", "RS256")
	jwks := jwksJSON(f, true, rs, es)
	set, err := jwk.Parse([]byte(jwks))
	if err != nil {
		f.Fatal(err)
	}
	p := policy(f, "shop", "fuzz", "jwtRules:\n- issuer: "+testIssuer+"\n  jwks: '"+jwks+"'\n")
	a := mustCompile(f, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}), p)

	good := rs.sign(f, claims(testIssuer, nil), nil)
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good,
		es.sign(f, claims(testIssuer, map[string]any{"aud": []string{"a", "b"}}), nil),
		evil.sign(f, claims(testIssuer, nil), nil),
		rawToken(`{"alg":"none"}`, mustJSON(f, claims(testIssuer, nil)), nil),
		rawToken(`{"alg":"HS256","kid":"fz-rs"}`, mustJSON(f, claims(testIssuer, nil)), []byte("sig")),
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1],
		good + ".x",
		b64(`{"alg":"RS256","alg":"none"}`) + "." + parts[1] + "." + parts[2],
		b64(`{"alg":"RS256","crit":["x"]}`) + "." + parts[1] + "." + parts[2],
		"", ".", "..", "...", "a.b.c", "e30.e30.", "eyJ.eyJ.eyJ",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if strings.ContainsAny(tok, "\r\n") {
			return // not a header value
		}
		r := bearer("")
		r.Header.Set("Authorization", "Bearer "+tok)
		res, err := a.Authenticate(r)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if res == nil {
			if strings.TrimSpace(tok) != "" {
				t.Fatalf("token %q neither accepted nor rejected", tok)
			}
			return
		}
		tok = strings.TrimSpace(tok)
		if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(false))); err != nil {
			t.Fatalf("accepted token %q that jws.Verify rejects: %v", tok, err)
		}
		if res.Issuer != testIssuer {
			t.Fatalf("accepted issuer %q", res.Issuer)
		}
	})
}
