package jwt

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const testIssuer = "https://issuer.example.com"

// attackEnv is one issuer with RSA, EC and Ed25519 keys, inline.
type attackEnv struct {
	rs, rs2, es, ed, evil signer
	a                     *Authenticator
}

func newAttackEnv(t testing.TB) *attackEnv {
	e := &attackEnv{
		rs:   newSigner(t, "rsa", "k1", "RS256"),
		rs2:  newSigner(t, "rsa", "k2", "RS256"),
		es:   newSigner(t, "p256", "ec1", "ES256"),
		ed:   newSigner(t, "ed25519", "ed1", "EdDSA"),
		evil: newSigner(t, "rsa", "evil", "RS256"),
	}
	jwks := jwksJSON(t, true, e.rs, e.rs2, e.es, e.ed)
	p := policy(t, "shop", "jwt", `
jwtRules:
- issuer: `+testIssuer+`
  audiences: [productapp]
  jwks: '`+jwks+`'
`)
	e.a = mustCompile(t, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}), p)
	return e
}

// rs256Raw signs an arbitrary header and payload text with RS256, for
// tokens no JWT library would produce.
func rs256Raw(t testing.TB, s signer, header, payload string) string {
	t.Helper()
	input := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(input))
	sig, err := s.priv.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hs256(t testing.TB, secret []byte, hdr map[string]any, c map[string]any) string {
	t.Helper()
	h := jws.NewHeaders()
	for k, v := range hdr {
		_ = h.Set(k, v)
	}
	tok, err := jws.Sign([]byte(mustJSON(t, c)), jws.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func withSig(tok, sig string) string {
	i := strings.LastIndex(tok, ".")
	return tok[:i+1] + sig
}

func TestAttackTokensRejected(t *testing.T) {
	e := newAttackEnv(t)
	good := claims(testIssuer, nil)
	goodHdr := `{"alg":"RS256","kid":"k1","typ":"JWT"}`
	goodTok := e.rs.sign(t, good, nil)
	otherTok := e.rs.sign(t, claims(testIssuer, map[string]any{"sub": "mallory"}), nil)
	rsaPub := e.rs.priv.Public().(*rsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(rsaPub)
	pemPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	evilJWK, _ := jwk.Import(e.evil.priv.Public())
	_ = evilJWK.Set(jwk.KeyIDKey, "k1")

	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		_, _ = w.Write([]byte(jwksJSON(t, true, e.evil)))
	}))
	defer attacker.Close()

	const (
		s401 = http.StatusUnauthorized
		s403 = http.StatusForbidden
	)
	tests := []struct {
		name   string
		token  func() string
		req    func(tok string) *http.Request // default: bearer
		status int
		msg    string
	}{
		{"alg none", func() string { return rawToken(`{"alg":"none"}`, mustJSON(t, good), nil) }, nil, s401, MsgHeaderAlgNotImpl},
		{"alg None capitalised", func() string { return rawToken(`{"alg":"None"}`, mustJSON(t, good), nil) }, nil, s401, MsgHeaderAlgNotImpl},
		{"alg NONE uppercase", func() string { return rawToken(`{"alg":"NONE"}`, mustJSON(t, good), nil) }, nil, s401, MsgHeaderAlgNotImpl},
		{"alg none with a signature kept", func() string {
			return withSig(rawToken(`{"alg":"none","kid":"k1"}`, mustJSON(t, good), nil), strings.Split(goodTok, ".")[2])
		}, nil, s401, MsgHeaderAlgNotImpl},
		{"alg missing", func() string { return rawToken(`{"kid":"k1"}`, mustJSON(t, good), []byte("x")) }, nil, s401, MsgHeaderBadAlg},
		{"alg not a string", func() string { return rawToken(`{"alg":256}`, mustJSON(t, good), []byte("x")) }, nil, s401, MsgHeaderBadAlg},
		{"alg unknown ES256K", func() string { return rawToken(`{"alg":"ES256K"}`, mustJSON(t, good), []byte("x")) }, nil, s401, MsgHeaderAlgNotImpl},
		{"HS256 keyed with the RSA public key PEM", func() string { return hs256(t, pemPub, map[string]any{"kid": "k1"}, good) }, nil, s401, MsgKidAlgMismatch},
		{"HS256 keyed with the RSA modulus", func() string { return hs256(t, rsaPub.N.Bytes(), map[string]any{"kid": "k1"}, good) }, nil, s401, MsgKidAlgMismatch},
		{"HS256 without kid", func() string { return hs256(t, pemPub, nil, good) }, nil, s401, MsgKidAlgMismatch},
		{"kid pointing to another key of the set", func() string { return withKid(t, e.rs, "k2", good) }, nil, s401, MsgVerificationFails},
		{"attacker key claiming a trusted kid", func() string { s := e.evil; s.kid = "k1"; return s.sign(t, good, nil) }, nil, s401, MsgVerificationFails},
		{"attacker key with its own kid", func() string { return e.evil.sign(t, good, nil) }, nil, s401, MsgKidAlgMismatch},
		{"kid path traversal", func() string { s := e.evil; s.kid = "../../../../etc/passwd"; return s.sign(t, good, nil) }, nil, s401, MsgKidAlgMismatch},
		{"kid injection", func() string { s := e.evil; s.kid = "k1' OR '1'='1"; return s.sign(t, good, nil) }, nil, s401, MsgKidAlgMismatch},
		{"kid not a string", func() string { return rawToken(`{"alg":"RS256","kid":7}`, mustJSON(t, good), []byte("x")) }, nil, s401, MsgHeaderBadKid},
		{"embedded jwk header with attacker key", func() string {
			return e.evil.sign(t, good, map[string]any{"jwk": evilJWK})
		}, nil, s401, MsgKidAlgMismatch},
		{"jku header to attacker JWKS", func() string { return e.evil.sign(t, good, map[string]any{"jku": attacker.URL}) }, nil, s401, MsgKidAlgMismatch},
		{"x5u header to attacker", func() string { return e.evil.sign(t, good, map[string]any{"x5u": attacker.URL}) }, nil, s401, MsgKidAlgMismatch},
		{"crit header on a well signed token", func() string {
			return rs256Raw(t, e.rs, `{"alg":"RS256","kid":"k1","crit":["exp"],"exp":1}`, mustJSON(t, good))
		}, nil, s401, MsgVerificationFails},
		{"b64 false header", func() string { return rs256Raw(t, e.rs, `{"alg":"RS256","kid":"k1","b64":false}`, mustJSON(t, good)) }, nil, s401, MsgVerificationFails},
		{"RS256 signature relabelled PS256", func() string { return relabel(goodTok, `{"alg":"PS256","kid":"k1","typ":"JWT"}`) }, nil, s401, MsgKidAlgMismatch},
		{"ES256 signature relabelled ES384", func() string {
			return relabel(e.es.sign(t, good, nil), `{"alg":"ES384","kid":"ec1","typ":"JWT"}`)
		}, nil, s401, MsgKidAlgMismatch},
		{"ES256 token claiming RS256 with the EC kid", func() string {
			return relabel(e.es.sign(t, good, nil), `{"alg":"RS256","kid":"ec1","typ":"JWT"}`)
		}, nil, s401, MsgKidAlgMismatch},
		{"expired", func() string {
			return e.rs.sign(t, claims(testIssuer, map[string]any{"exp": testNow.Add(-2 * time.Minute).Unix()}), nil)
		}, nil, s401, MsgExpired},
		{"expired just past the skew", func() string {
			return e.rs.sign(t, claims(testIssuer, map[string]any{"exp": testNow.Add(-61 * time.Second).Unix()}), nil)
		}, nil, s401, MsgExpired},
		{"nbf in the future", func() string {
			return e.rs.sign(t, claims(testIssuer, map[string]any{"nbf": testNow.Add(2 * time.Minute).Unix()}), nil)
		}, nil, s401, MsgNotYetValid},
		{"wrong issuer", func() string { return e.rs.sign(t, claims("https://evil.example.com", nil), nil) }, nil, s401, MsgUnknownIssuer},
		{"issuer with a trailing slash", func() string { return e.rs.sign(t, claims(testIssuer+"/", nil), nil) }, nil, s401, MsgUnknownIssuer},
		{"issuer with a homoglyph", func() string { return e.rs.sign(t, claims("https://issuer.exаmple.com", nil), nil) }, nil, s401, MsgUnknownIssuer},
		{"no issuer", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"iss": nil}), nil) }, nil, s401, MsgUnknownIssuer},
		{"wrong audience", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"aud": "otherapp"}), nil) }, nil, s403, MsgAudienceNotAllowed},
		{"no audience", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"aud": nil}), nil) }, nil, s403, MsgAudienceNotAllowed},
		{"audience list without ours", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"aud": []string{"a", "b"}}), nil) }, nil, s403, MsgAudienceNotAllowed},
		{"audience as a prefix of ours", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"aud": "product"}), nil) }, nil, s403, MsgAudienceNotAllowed},
		{"truncated to two segments", func() string { return goodTok[:strings.LastIndex(goodTok, ".")] }, nil, s401, MsgBadFormat},
		{"truncated signature", func() string { return goodTok[:len(goodTok)-6] }, nil, s401, MsgVerificationFails}, // 336 chars stay valid base64url
		{"stripped signature", func() string { return withSig(goodTok, "") }, nil, s401, MsgVerificationFails},
		{"signature of another token", func() string { return withSig(goodTok, strings.Split(otherTok, ".")[2]) }, nil, s401, MsgVerificationFails},
		{"payload swapped under a good signature", func() string {
			p := strings.Split(goodTok, ".")
			return p[0] + "." + strings.Split(otherTok, ".")[1] + "." + p[2]
		}, nil, s401, MsgVerificationFails},
		{"extra segment", func() string { return goodTok + ".e30" }, nil, s401, MsgBadFormat},
		{"JWE compact form", func() string { return "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d" }, nil, s401, MsgBadFormat},
		{"JWS JSON serialization", func() string { return `{"payload":"e30","signatures":[]}` }, nil, s401, MsgBadFormat},
		{"empty token after the prefix", func() string { return "" }, func(string) *http.Request {
			r := bearer("")
			r.Header.Set("Authorization", "Bearer ")
			return r
		}, s401, MsgBadFormat},
		{"bad base64 in header", func() string { return "ey*hbGciOiJSUzI1NiJ9." + strings.SplitN(goodTok, ".", 2)[1] }, nil, s401, MsgHeaderBadBase64},
		{"padded base64 header", func() string { return b64(goodHdr) + "=." + strings.SplitN(goodTok, ".", 2)[1] }, nil, s401, MsgHeaderBadBase64},
		{"line break inside the header", func() string { return goodTok[:5] + "\n" + goodTok[5:] }, nil, s401, MsgHeaderBadBase64},
		{"bad base64 in payload", func() string { p := strings.Split(goodTok, "."); return p[0] + ".e30!." + p[2] }, nil, s401, MsgPayloadBadBase64},
		{"bad base64 in signature", func() string { return withSig(goodTok, "ab+/") }, nil, s401, MsgSignatureBadBase64},
		{"header JSON is an array", func() string { return rawToken(`["RS256"]`, mustJSON(t, good), []byte("x")) }, nil, s401, MsgHeaderBadJSON},
		{"header JSON is null", func() string { return rawToken(`null`, mustJSON(t, good), []byte("x")) }, nil, s401, MsgHeaderBadJSON},
		{"duplicate alg in header", func() string { return rs256Raw(t, e.rs, `{"alg":"none","alg":"RS256","kid":"k1"}`, mustJSON(t, good)) }, nil, s401, MsgHeaderBadJSON},
		{"payload JSON is a string", func() string { return rs256Raw(t, e.rs, goodHdr, `"admin"`) }, nil, s401, MsgPayloadBadJSON},
		{"payload JSON is not JSON", func() string { return rs256Raw(t, e.rs, goodHdr, `{iss: x}`) }, nil, s401, MsgPayloadBadJSON},
		{"payload with data after the object", func() string { return rs256Raw(t, e.rs, goodHdr, mustJSON(t, good)+`{"sub":"root"}`) }, nil, s401, MsgPayloadBadJSON},
		{"duplicate sub claim", func() string {
			p := mustJSON(t, good)
			return rs256Raw(t, e.rs, goodHdr, p[:len(p)-1]+`,"sub":"admin"}`)
		}, nil, s401, MsgPayloadBadJSON},
		{"duplicate nested claim", func() string {
			p := mustJSON(t, good)
			return rs256Raw(t, e.rs, goodHdr, p[:len(p)-1]+`,"realm":{"role":"user","role":"admin"}}`)
		}, nil, s401, MsgPayloadBadJSON},
		{"deeply nested payload", func() string {
			p := mustJSON(t, good)
			return rs256Raw(t, e.rs, goodHdr, p[:len(p)-1]+`,"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`)
		}, nil, s401, MsgPayloadBadJSON},
		{"huge token", func() string {
			return e.rs.sign(t, claims(testIssuer, map[string]any{"pad": strings.Repeat("A", MaxTokenSize)}), nil)
		}, nil, s401, MsgVerificationFails},
		{"exp as a string", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"exp": "4685989700"}), nil) }, nil, s401, msgNotInteger("exp")},
		{"exp negative", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"exp": -1}), nil) }, nil, s401, msgOutOfRange("exp")},
		{"exp beyond 64 bits", func() string {
			return rs256Raw(t, e.rs, goodHdr, `{"iss":"`+testIssuer+`","aud":"productapp","exp":1e300}`)
		}, nil, s401, msgOutOfRange("exp")},
		{"nbf as a string", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"nbf": "0"}), nil) }, nil, s401, msgNotInteger("nbf")},
		{"iat as a bool", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"iat": true}), nil) }, nil, s401, msgNotInteger("iat")},
		{"iss as a number", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"iss": 1}), nil) }, nil, s401, MsgIssNotString},
		{"iss as a list", func() string {
			return e.rs.sign(t, claims(testIssuer, map[string]any{"iss": []string{testIssuer}}), nil)
		}, nil, s401, MsgIssNotString},
		{"sub as an object", func() string {
			return e.rs.sign(t, claims(testIssuer, map[string]any{"sub": map[string]any{"id": 1}}), nil)
		}, nil, s401, MsgSubNotString},
		{"aud as a number", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"aud": 3}), nil) }, nil, s401, MsgAudNotString},
		{"aud list holding a number", func() string {
			return e.rs.sign(t, claims(testIssuer, map[string]any{"aud": []any{"productapp", 3}}), nil)
		}, nil, s401, MsgAudNotString},
		{"jti as a number", func() string { return e.rs.sign(t, claims(testIssuer, map[string]any{"jti": 3}), nil) }, nil, s401, MsgJtiNotString},
		{"header without the Bearer prefix", func() string { return goodTok }, func(tok string) *http.Request {
			r := bearer("")
			r.Header.Set("Authorization", tok)
			return r
		}, s401, MsgMissing},
		{"lowercase bearer prefix", func() string { return goodTok }, func(tok string) *http.Request {
			r := bearer("")
			r.Header.Set("Authorization", "bearer "+tok)
			return r
		}, s401, MsgMissing},
		{"basic credentials in Authorization", func() string { return "" }, func(string) *http.Request {
			r := bearer("")
			r.SetBasicAuth("alice", "secret")
			return r
		}, s401, MsgMissing},
		{"good header token with a bad query token", func() string { return goodTok }, func(tok string) *http.Request {
			r := bearer(tok)
			r.URL.RawQuery = "access_token=" + withSig(otherTok, strings.Split(goodTok, ".")[2])
			return r
		}, s401, MsgVerificationFails},
		{"good token repeated with a bad second Authorization header", func() string { return goodTok }, func(tok string) *http.Request {
			r := bearer(tok)
			r.Header.Add("Authorization", "Bearer "+e.evil.sign(t, good, nil))
			return r
		}, s401, MsgKidAlgMismatch},
	}
	if len(tests) < 40 {
		t.Fatalf("only %d attack cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token()
			r := bearer(tok)
			if tt.req != nil {
				r = tt.req(tok)
			}
			before, query := r.Header.Clone(), r.URL.RawQuery
			res, err := e.a.Authenticate(r)
			if res != nil {
				t.Fatalf("accepted as %q", res.Principal)
			}
			asError(t, err, tt.status, tt.msg)
			if !reflect.DeepEqual(r.Header, before) || r.URL.RawQuery != query {
				t.Errorf("rejected request was changed: %v %q -> %v %q", before, query, r.Header, r.URL.RawQuery)
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's jku/x5u server was fetched %d times", n)
	}
}

func withKid(t testing.TB, s signer, kid string, c map[string]any) string {
	s.kid = kid
	return s.sign(t, c, nil)
}

// relabel replaces a token's header, keeping payload and signature.
func relabel(tok, header string) string {
	return b64(header) + tok[strings.Index(tok, "."):]
}
