package mesh_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// es256 mints ES256 JWTs and publishes its public key as a JWKS.
type es256 struct{ key *ecdsa.PrivateKey }

func (s es256) jwks() string {
	b := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	return fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":%q,"y":%q}]}`, b(s.key.X), b(s.key.Y))
}

func (s es256) token(t *testing.T, sub string) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "ES256", "kid": "k1", "typ": "JWT"}) + "." +
		enc(map[string]any{"iss": "https://issuer.secrets.test", "sub": sub, "aud": "productcatalog", "exp": time.Now().Add(time.Hour).Unix()})
	h := sha256.Sum256([]byte(signing))
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// jwtShape is any compact JWS: two base64url JSON objects and a
// signature.
var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}`)

// The whole workshop mesh runs with debug logs (control plane, every
// sidecar, the gateway) while requests carry a JWT, a cookie and an API
// key; then every log, every metric and every admin endpoint is read:
// none holds a private key, a join token, a JWT or those header values.
// Files holding keys are 0600 and the state directory 0700.
func TestNoSecretsInLogsMetricsOrAdmin(t *testing.T) {
	b := meshtest.Build(t)
	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := es256{key}
	ra := fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: catalog-jwt, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  jwtRules:
  - issuer: https://issuer.secrets.test
    jwks: '%s'
`, signer.jwks())
	if err := os.WriteFile(filepath.Join(dir, "secrets-jwt.yaml"), []byte(ra), 0o600); err != nil {
		t.Fatal(err)
	}
	m := meshtest.Up(t, b, dir, "-v")

	good := signer.token(t, "alice")
	bad := good[:len(good)-4] + "AAAA"
	const cookie, apiKey = "session=s3cr3t-cookie-8f1d", "key-7c41e9d2b0"
	c := m.Client("workshop", "frontend")
	send := func(tok string, want int) {
		meshtest.Eventually(t, 20*time.Second, fmt.Sprintf("a request with a token answered %d", want), func() error {
			req, _ := http.NewRequest("GET", "http://productcatalog:5000/products", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Cookie", cookie)
			req.Header.Set("X-Api-Key", apiKey)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	send(good, 200)
	send(bad, 401)

	sources := map[string]string{"palisade up output": m.Output()}
	logs, _ := filepath.Glob(filepath.Join(m.State, "logs", "*.proxy.log"))
	if len(logs) < 4 {
		t.Fatalf("only %d proxy logs: %v", len(logs), logs)
	}
	for _, p := range logs {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sources[filepath.Base(p)] = string(body)
		if strings.Contains(p, "productcatalog") && !strings.Contains(string(body), `"level":"DEBUG"`) {
			t.Errorf("%s has no debug records: the proxies did not log at debug level", filepath.Base(p))
		}
	}
	fetch := func(u string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		sources["GET "+u] = string(body)
	}
	for _, w := range m.Status() {
		admin := m.Proxy(w.Namespace, w.Name).Admin
		for _, path := range []string{"/ready", "/metrics", "/config_dump", "/certs", "/jwt"} {
			fetch("http://" + admin + path)
		}
	}
	for _, path := range []string{"/healthz", "/api/status", "/api/proxies", "/api/describe", "/api/ca"} {
		fetch("http://" + m.Admin + path)
	}

	needles := map[string]string{
		"a private key":      "PRIVATE KEY",
		"a join token":       "palisade-join.",
		"the JWT":            good,
		"the JWT signature":  good[strings.LastIndexByte(good, '.')+1:],
		"the tampered JWT":   bad,
		"the cookie":         "s3cr3t-cookie-8f1d",
		"the API key header": apiKey,
	}
	read := 0
	for src, body := range sources {
		read += len(body)
		for what, needle := range needles {
			if strings.Contains(body, needle) {
				t.Errorf("%s holds %s", src, what)
			}
		}
		if loc := jwtShape.FindString(body); loc != "" {
			t.Errorf("%s holds a JWT: %.40s...", src, loc)
		}
	}
	t.Logf("scanned %d sources, %d KiB: logs at debug level, metrics, admin endpoints", len(sources), read>>10)

	st, err := os.Stat(m.State)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("state directory %s is %o, want 700", m.State, perm)
	}
	keys := 0
	err = filepath.WalkDir(m.State, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(body), "PRIVATE KEY") || strings.Contains(string(body), "palisade-join.") {
			keys++
			info, _ := d.Info()
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s holds a secret and is %o, want 600", p, perm)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys == 0 {
		t.Errorf("no key file found under %s: the CA's key should be there", m.State)
	}
}
