package proxy_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"palisade.dev/palisade/internal/proxy"
)

// authorizer is an envoyExtAuthzHttp server: it allows a request that
// carries x-ext-authz: allow and records every path it was asked about.
type authorizer struct {
	mu    sync.Mutex
	paths []string
	addr  string
}

func newAuthorizer(t *testing.T) *authorizer {
	t.Helper()
	a := &authorizer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, r.URL.Path)
		a.mu.Unlock()
		if r.Header.Get("X-Ext-Authz") == "allow" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "denied by ext_authz")
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *authorizer) asked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}

// CUSTOM runs first and its deny is final; a request it allows still
// meets DENY, then ALLOW; only what its rules select goes to the
// provider (Istio's "External Authorization" task and the
// AuthorizationPolicy reference).
func TestCustomRunsBeforeDenyAndAllow(t *testing.T) {
	a := newAuthorizer(t)
	_, port, _ := net.SplitHostPort(a.addr)
	m := newTestMesh(t)
	m.write("mesh.yaml", `trustDomain: cluster.local
rootNamespace: istio-system
extensionProviders:
- name: http-authz
  envoyExtAuthzHttp:
    service: ext-authz.local
    port: `+port+`
    includeRequestHeadersInCheck: ["x-ext-authz"]
`)
	m.write("pa.yaml", strictMesh+`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: istio-system}
spec:
  hosts: [ext-authz.local]
  endpoints: [{address: 127.0.0.1}]
  ports: [{name: http, number: `+port+`, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-admin, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  action: CUSTOM
  provider: {name: http-authz}
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-secret, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin/secret*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-some, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  action: ALLOW
  rules: [{to: [{operation: {paths: ["/admin*", "/public*"]}}]}]
`)
	m.reload()
	m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: app(t)}}, false)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	c := proxyClient(front)
	call := func(path string, allow bool) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://productcatalog:5000"+path, nil)
		if allow {
			req.Header.Set("X-Ext-Authz", "allow")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	eventually(t, "CUSTOM allows /admin/x", func() error {
		if code, body := call("/admin/x", true); code != 200 || !strings.Contains(body, "path=/admin/x") {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	before := len(a.asked())
	for _, c := range []struct {
		name  string
		path  string
		allow bool
		code  int
		body  string
		asked bool
	}{
		{"CUSTOM allows, no DENY, ALLOW matches", "/admin/x", true, 200, "path=/admin/x", true},
		{"CUSTOM denies: final, the authorizer's answer goes back", "/admin/x", false, 403, "denied by ext_authz", true},
		{"CUSTOM allows, then DENY still refuses", "/admin/secret", true, 403, "RBAC: access denied", true},
		{"not selected by CUSTOM: never asked; ALLOW matches", "/public/a", false, 200, "path=/public/a", false},
		{"not selected by CUSTOM, no ALLOW matches", "/other", true, 403, "RBAC: access denied", false},
	} {
		n := len(a.asked())
		code, body := call(c.path, c.allow)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s: GET %s = %d %q, want %d with %q", c.name, c.path, code, body, c.code, c.body)
		}
		if got := len(a.asked()) > n; got != c.asked {
			t.Errorf("%s: authorizer asked %v, want %v", c.name, got, c.asked)
		}
	}
	for _, p := range a.asked()[before:] {
		if !strings.HasPrefix(p, "/admin") {
			t.Errorf("the authorizer was asked about %s, which no CUSTOM rule selects", p)
		}
	}
	log := m.logs["productcatalog"].String()
	for _, want := range []string{
		`"response_code":403,"response_flags":"UAEX"`,
		`"authz_decision":"CUSTOM-DENY","authz_policy":"CUSTOM workshop/ext-admin rule 0 provider http-authz"`,
		`"authz_decision":"DENY","authz_policy":"DENY workshop/deny-secret rule 0"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s:\n%s", want, log)
		}
	}
}
