package proxy_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// signer mints RS256 tokens with one key, published as a JWKS.
type signer struct {
	kid string
	key *rsa.PrivateKey
}

func newSigner(t *testing.T, kid string) *signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, key: k}
}

func (s *signer) jwks() string {
	b64 := base64.RawURLEncoding.EncodeToString
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": s.kid,
		"n": b64(s.key.N.Bytes()), "e": b64(big.NewInt(int64(s.key.E)).Bytes()),
	}}})
	return string(b)
}

func (s *signer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": s.kid})
	p, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

const gatewayJWT = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: productapp-gateway, namespace: workshop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8080, name: http-internal, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productapp, namespace: workshop}
spec:
  hosts: ["*"]
  gateways: [productapp-gateway]
  http:
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: frontend, port: {number: 9000}}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: istio-ingress, namespace: istio-ingress}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: https://idp.example.com
    jwks: 'JWKS'
    audiences: [productapp]
    forwardOriginalToken: FORWARD
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: istio-ingress, namespace: istio-ingress}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {ports: ["80", "443"]}}]
`

// TestGatewayRequestAuthentication is scenario 2 on loopback: a
// RequestAuthentication and a DENY on notRequestPrincipals at the
// gateway, as in the workshop's optional ingress policies.
func TestGatewayRequestAuthentication(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh)
	idp := newSigner(t, "idp-1")
	config := func(forward bool) string {
		return strings.NewReplacer("JWKS", idp.jwks(), "FORWARD", fmt.Sprint(forward)).Replace(gatewayJWT)
	}
	m.write("gateway.yaml", config(true))
	m.reload()
	m.frontendBehindGateway()
	g := m.gateway("", 80, 8080)
	c := noRedirects()

	now := time.Now()
	claims := func(aud any, exp time.Time) map[string]any {
		return map[string]any{"iss": "https://idp.example.com", "sub": "alice", "aud": aud, "iat": now.Unix(), "exp": exp.Unix()}
	}
	valid := idp.token(t, claims("productapp", now.Add(time.Hour)))
	parts := strings.Split(valid, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"alice"`, `"admin"`, 1))) + "." + parts[2]
	// Same kid, another key: the signature does not verify.
	forger := &signer{kid: "idp-1", key: newSigner(t, "x").key}

	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	eventually(t, "a valid token gets through", func() error {
		code, b, _ := do(t, c, "GET", g.url(80, "/"), "", bearer(valid))
		if code != 200 {
			return fmt.Errorf("%d %s", code, b)
		}
		// forwardOriginalToken: the app behind sees the token.
		if !strings.Contains(b, "Authorization: Bearer "+valid) {
			return fmt.Errorf("app saw no Authorization header:\n%s", b)
		}
		return nil
	})

	cases := []struct {
		name string
		port uint32
		hdr  http.Header
		code int
		body string
	}{
		{"no token: the DENY policy", 80, nil, 403, "RBAC: access denied"},
		{"tampered payload", 80, bearer(tampered), 401, "Jwt verification fails"},
		{"signed by a key not in the JWKS", 80, bearer(forger.token(t, claims("productapp", now.Add(time.Hour)))), 401, "Jwt verification fails"},
		{"unknown kid", 80, bearer(newSigner(t, "other").token(t, claims("productapp", now.Add(time.Hour)))), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"expired", 80, bearer(idp.token(t, claims("productapp", now.Add(-time.Minute)))), 401, "Jwt is expired"},
		{"malformed", 80, bearer("not-a-jwt"), 401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{"another audience", 80, bearer(idp.token(t, claims("billing", now.Add(time.Hour)))), 403, "Audiences in Jwt are not allowed"},
		{"audience list with productapp", 80, bearer(idp.token(t, claims([]string{"billing", "productapp"}, now.Add(time.Hour)))), 200, "path=/"},
		// The DENY names ports 80 and 443: the gateway's own server port
		// is what policies see, so 8080 lets a request without a token in.
		{"no token on a port the DENY does not name", 8080, nil, 200, "path=/"},
		// A token, when present, is still checked on every port.
		{"expired token on 8080", 8080, bearer(idp.token(t, claims("productapp", now.Add(-time.Minute)))), 401, "Jwt is expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, b, h := do(t, c, "GET", g.url(tc.port, "/"), "", tc.hdr)
			if code != tc.code || !strings.Contains(b, tc.body) {
				t.Fatalf("%d %q, want %d %q", code, b, tc.code, tc.body)
			}
			if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer realm=") {
				t.Errorf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
			}
		})
	}
	eventually(t, "the gateway's access log records the JWT denials", func() error {
		l := g.log.String()
		if !strings.Contains(l, `"response_code":401`) || !strings.Contains(l, `"response_code":403`) {
			return fmt.Errorf("gateway access log: %s", l)
		}
		return nil
	})

	// Without forwardOriginalToken the token stops at the gateway.
	m.write("gateway.yaml", config(false))
	m.reload()
	eventually(t, "the token is removed before forwarding", func() error {
		code, b, _ := do(t, c, "GET", g.url(80, "/"), "", bearer(valid))
		if code != 200 || strings.Contains(b, "Authorization") {
			return fmt.Errorf("%d\n%s", code, b)
		}
		return nil
	})
}
