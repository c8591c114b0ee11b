package proxy_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/proxy"
)

// authHeaderApp echoes the request headers the sidecar forwarded.
func authHeaderApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "authorization=%q groups=%q", r.Header.Get("Authorization"), r.Header.Get("X-Jwt-Groups"))
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../jwt/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Istio's "Authorization with JWT" task, in a sidecar, with Istio's own
// sample tokens: a RequestAuthentication for testing@secure.istio.io and
// an ALLOW policy on its request principal, then narrowed by a
// request.auth.claims[groups] condition.
func TestSidecarRequestAuthenticationWithIstioSampleTokens(t *testing.T) {
	m := newTestMesh(t)
	policies := func(when string) string {
		return strictMesh + `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-example, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '` + fixture(t, "jwks.json") + `'
    outputClaimToHeaders: [{header: x-jwt-groups, claim: groups}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["testing@secure.istio.io/testing@secure.istio.io"]}}]
` + when
	}
	m.write("pa.yaml", policies(""))
	m.reload()
	m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: authHeaderApp(t)}}, false)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	c := proxyClient(front)
	call := func(token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://productcatalog:5000/headers", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	demo, groups := fixture(t, "demo.jwt"), fixture(t, "groups-scope.jwt")
	eventually(t, "demo.jwt accepted", func() error {
		if code, b := call(demo); code != 200 {
			return fmt.Errorf("%d %s", code, b)
		}
		return nil
	})
	// Another signature over the same header and payload.
	parts := strings.Split(demo, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	// Envoy copies a list claim base64-encoded, as its JSON
	// (envoyproxy/envoy#30377); Istio documents string, int and bool.
	groupsHeader := base64.StdEncoding.EncodeToString([]byte(`["group1","group2"]`))
	for _, c := range []struct {
		name, token string
		code        int
		body        string
	}{
		{"valid token; forwarded without it (forwardOriginalToken false)", demo, 200, `authorization="" groups=""`},
		{"groups claim copied to the header outputClaimToHeaders names", groups, 200, `authorization="" groups="` + groupsHeader + `"`},
		{"invalid token", tampered, 401, "Jwt verification fails"},
		{"no token: no request principal, so the ALLOW does not match", "", 403, "RBAC: access denied"},
	} {
		if code, body := call(c.token); code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, body, c.code, c.body)
		}
	}

	// The task's second step: only tokens whose groups claim holds group1.
	m.write("pa.yaml", policies(`    when: [{key: "request.auth.claims[groups]", values: ["group1"]}]
`))
	m.reload()
	eventually(t, "demo.jwt refused once the groups condition applies", func() error {
		if code, b := call(demo); code != http.StatusForbidden || b != "RBAC: access denied" {
			return fmt.Errorf("%d %s", code, b)
		}
		return nil
	})
	if code, body := call(groups); code != 200 {
		t.Errorf("groups-scope.jwt (groups: group1, group2): %d %q, want 200", code, body)
	}
	log := m.logs["productcatalog"].String()
	for _, want := range []string{`"response_code":401`, `"authz_decision":"JWT-DENY"`, `"authz_policy":"ALLOW workshop/require-jwt rule 0"`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s:\n%s", want, log)
		}
	}
	if strings.Count(log, "\n") < 7 {
		t.Errorf("access log has %d lines, want one per request", strings.Count(log, "\n"))
	}
}
