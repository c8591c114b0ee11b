package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	securityv1beta1 "istio.io/api/security/v1beta1"
	"sigs.k8s.io/yaml"

	"palisade.dev/palisade/internal/config"
)

// testNow is the fixed time of the table tests.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// signer is a private key with its kid and algorithm.
type signer struct {
	kid  string
	alg  string
	priv crypto.Signer
}

var (
	keyCacheMu sync.Mutex
	keyCache   = map[string]crypto.Signer{}
)

// testKey returns a key of the given kind ("rsa", "rsa3072", "p256",
// "p384", "p521", "ed25519"), the same one for the same name within a run.
func testKey(t testing.TB, kind, name string) crypto.Signer {
	t.Helper()
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	if k, ok := keyCache[kind+"/"+name]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	keyCache[kind+"/"+name] = k
	return k
}

func newSigner(t testing.TB, kind, name, alg string) signer {
	return signer{kid: name, alg: alg, priv: testKey(t, kind, name)}
}

// jwksJSON renders the public halves of the signers as a JWKS; each JWK
// carries kid, and alg when withAlg.
func jwksJSON(t testing.TB, withAlg bool, ss ...signer) string {
	t.Helper()
	set := jwk.NewSet()
	for _, s := range ss {
		k, err := jwk.Import(s.priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		if s.kid != "" {
			_ = k.Set(jwk.KeyIDKey, s.kid)
		}
		if withAlg {
			_ = k.Set(jwk.AlgorithmKey, jwa.NewSignatureAlgorithm(s.alg))
		}
		_ = set.AddKey(k)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign makes a compact JWT with jwx; hdr adds protected header fields.
func (s signer) sign(t testing.TB, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if s.kid != "" {
		_ = h.Set(jws.KeyIDKey, s.kid)
	}
	_ = h.Set(jws.TypeKey, "JWT")
	for k, v := range hdr {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	alg, ok := jwa.LookupSignatureAlgorithm(s.alg)
	if !ok {
		t.Fatalf("alg %q", s.alg)
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, s.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawToken assembles a token from a header and payload (JSON text) and a
// signature, with no signing.
func rawToken(header, payload string, sig []byte) string {
	return b64(header) + "." + b64(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// claims returns standard claims valid at testNow, with extra merged in
// (a nil value deletes the claim).
func claims(iss string, extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": iss, "sub": "alice", "aud": "productapp",
		"iat": testNow.Add(-time.Minute).Unix(), "exp": testNow.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// policy decodes a RequestAuthentication spec written as YAML.
func policy(t testing.TB, ns, name, specYAML string) Policy {
	t.Helper()
	spec := &securityv1beta1.RequestAuthentication{}
	if err := yaml.Unmarshal([]byte(specYAML), spec); err != nil {
		t.Fatalf("decode %s/%s: %v", ns, name, err)
	}
	return Policy{Namespace: ns, Name: name, Spec: spec}
}

var testWorkload = config.WorkloadRef{Namespace: "shop", Name: "productpage", Labels: map[string]string{"app": "productpage"}}

func mustCompile(t testing.TB, keys *KeyStore, ps ...Policy) *Authenticator {
	t.Helper()
	a, err := Compile(ps, testWorkload, config.DefaultRootNamespace, keys)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

// bearer makes a GET request carrying tok in Authorization.
func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://productpage.shop/api", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

// asError asserts err is an *Error with the status and message.
func asError(t *testing.T, err error, status int, msg string) *Error {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error = %T %v, want *Error %d %q", err, err, status, msg)
	}
	if e.Status != status || e.Message != msg {
		t.Fatalf("error = %d %q (%s), want %d %q", e.Status, e.Message, e.Reason, status, msg)
	}
	if e.Reason == "" {
		t.Errorf("error %q has no reason for the log", e.Message)
	}
	return e
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }
