package policy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// httpAuthzMesh is a mesh with three envoyExtAuthzHttp providers backed by
// examples/authorizer: http-authz (steady, at stable) guards /admin* of
// apps/echo; authz-fail-closed and authz-fail-open (at flaky, which the
// test stops, slows and restarts) guard every path of apps/closed and
// apps/open.
func httpAuthzMesh(stable, flaky string) string {
	return fmt.Sprintf(`trustDomain: cluster.local
rootNamespace: istio-system
extensionProviders:
- name: http-authz
  envoyExtAuthzHttp:
    service: ext-authz-http.local
    port: %[1]s
    includeRequestHeadersInCheck: ["x-ext-authz"]
    headersToUpstreamOnAllow: ["x-ext-authz-check-result"]
    headersToDownstreamOnDeny: ["x-ext-authz-check-result", "content-type"]
- name: authz-fail-closed
  envoyExtAuthzHttp:
    service: ext-authz-flaky.local
    port: %[2]s
    timeout: 0.3s
    statusOnError: "503"
    includeRequestHeadersInCheck: ["x-ext-authz"]
    headersToUpstreamOnAllow: ["x-ext-authz-check-result"]
- name: authz-fail-open
  envoyExtAuthzHttp:
    service: ext-authz-flaky.local
    port: %[2]s
    timeout: 0.3s
    failOpen: true
    includeRequestHeadersInCheck: ["x-ext-authz"]
    headersToUpstreamOnAllow: ["x-ext-authz-check-result"]
`, stable, flaky)
}

func httpAuthzResources(stable, flaky string) string {
	se := func(name, host, port string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: istio-system
spec:
  hosts: [%q]
  endpoints:
  - address: 127.0.0.1
  ports:
  - name: http
    number: %s
    protocol: HTTP
  resolution: DNS
---
`, name, host, port)
	}
	custom := func(name, app, provider, paths string) string {
		return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: %s
  namespace: apps
spec:
  selector:
    matchLabels:
      app: %s
  action: CUSTOM
  provider:
    name: %s
  rules:
  - to:
    - operation:
        paths: %s
---
`, name, app, provider, paths)
	}
	return `apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
---
` + se("ext-authz-http", "ext-authz-http.local", stable) + se("ext-authz-flaky", "ext-authz-flaky.local", flaky) +
		custom("admin-ext-authz", "echo", "http-authz", `["/admin*"]`) +
		custom("closed-ext-authz", "closed", "authz-fail-closed", `["*"]`) +
		custom("open-ext-authz", "open", "authz-fail-open", `["*"]`) +
		echoWorkload("apps", "echo", "echo-sa", 8080, map[string]string{"app": "echo"}) +
		echoWorkload("apps", "closed", "closed-sa", 8080, map[string]string{"app": "closed"}) +
		echoWorkload("apps", "open", "open-sa", 8080, map[string]string{"app": "open"})
}

// echoed decodes the echo app's answer: what reached the app.
func echoed(t testing.TB, r response) http.Header {
	t.Helper()
	var e struct {
		Service string      `json:"service"`
		Headers http.Header `json:"headers"`
	}
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil || e.Service == "" {
		t.Fatalf("answer is not from the app (%v): %d %s", err, r.Status, r.Body)
	}
	return e.Headers
}

// CUSTOM with an envoyExtAuthzHttp provider on /admin* only.
func TestHTTPExtAuthzAdminPaths(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/policy/echoapp")
	stableAddr, flakyAddr := freeAddr(t), freeAddr(t)
	authz := startAuthorizer(t, b, stableAddr)
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", httpAuthzMesh(portOf(t, stableAddr), portOf(t, flakyAddr)))
	writeFile(t, dir, "resources.yaml", httpAuthzResources(portOf(t, stableAddr), portOf(t, flakyAddr)))
	writeFile(t, dir, "user-client.yaml", userClientYAML)
	m := meshtest.Up(t, b, dir)
	c := m.Client("clients", "user")
	const echo = "http://echo.apps:8080"

	r := do(t, c, "GET", echo+"/admin/users", nil)
	if r.Status != 403 || r.Body != "denied by ext_authz for not found header `x-ext-authz: allow` in the request" {
		t.Errorf("GET /admin/users without the header: %d %q, want the authorizer's 403 and body", r.Status, r.Body)
	}
	if got := r.Header.Get("x-ext-authz-check-result"); got != "denied" {
		t.Errorf("denied answer: x-ext-authz-check-result %q, want denied (headersToDownstreamOnDeny)", got)
	}
	if got := r.Header.Get("x-ext-authz-check-received"); got != "" {
		t.Errorf("denied answer carries x-ext-authz-check-received %q, which headersToDownstreamOnDeny does not list", got)
	}

	r = do(t, c, "GET", echo+"/admin", nil, "x-ext-authz", "allow")
	if r.Status != 200 {
		t.Fatalf("GET /admin with x-ext-authz: allow: %d %s, want 200", r.Status, r.Body)
	}
	h := echoed(t, r)
	if got := h.Get("x-ext-authz-check-result"); got != "allowed" {
		t.Errorf("app saw x-ext-authz-check-result %q, want allowed (headersToUpstreamOnAllow); headers %v", got, h)
	}
	if got := h.Get("x-ext-authz-check-received"); got != "" {
		t.Errorf("app saw x-ext-authz-check-received %q, which headersToUpstreamOnAllow does not list", got)
	}

	// Paths outside /admin* reach the app without asking the authorizer.
	for _, p := range []string{"/", "/public/admin", "/adm"} {
		r := do(t, c, "GET", echo+p, nil)
		if r.Status != 200 {
			t.Errorf("GET %s: %d %s, want 200 without a check", p, r.Status, r.Body)
			continue
		}
		echoed(t, r)
	}
	findAccess(t, m, "apps", "echo", "GET", "/adm", 200)
	checks := authzChecks(authz.out.String())
	if len(checks) != 2 || !strings.Contains(checks[0], "/admin/users -> denied") || !strings.Contains(checks[1], "/admin -> allowed") {
		t.Errorf("the authorizer answered %q, want exactly the two /admin checks", checks)
	}

	deny := findAccess(t, m, "apps", "echo", "GET", "/admin/users", 403)
	allow := findAccess(t, m, "apps", "echo", "GET", "/admin", 200)
	other := findAccess(t, m, "apps", "echo", "GET", "/public/admin", 200)
	if deny["authz_decision"] != "CUSTOM-DENY" || !strings.Contains(str(deny["authz_policy"]), "apps/admin-ext-authz") {
		t.Errorf("access log of the denied request: %v", deny)
	}
	if allow["authz_decision"] != "CUSTOM-ALLOW" || !strings.Contains(str(allow["authz_policy"]), "apps/admin-ext-authz") {
		t.Errorf("access log of the allowed request: %v", allow)
	}
	if other["authz_decision"] == "CUSTOM-ALLOW" || other["authz_decision"] == "CUSTOM-DENY" {
		t.Errorf("access log of /public/admin shows a CUSTOM decision: %v", other)
	}
}

// authzChecks lists the authorizer's per-check log lines.
func authzChecks(out string) []string {
	var checks []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "check: ") {
			checks = append(checks, l)
		}
	}
	return checks
}

// An authorizer that is down or slower than the provider's timeout fails
// closed with statusOnError, or lets requests through with failOpen; the
// sidecars stay ready and use the authorizer again once it is back.
func TestHTTPExtAuthzFailureModes(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/policy/echoapp")
	// Both are started late or restarted on their address.
	stableAddr, flakyAddr := meshtest.HeldAddr(t), meshtest.HeldAddr(t)
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", httpAuthzMesh(portOf(t, stableAddr), portOf(t, flakyAddr)))
	writeFile(t, dir, "resources.yaml", httpAuthzResources(portOf(t, stableAddr), portOf(t, flakyAddr)))
	writeFile(t, dir, "user-client.yaml", userClientYAML)
	m := meshtest.Up(t, b, dir)
	c := m.Client("clients", "user")
	const closed, open = "http://closed.apps:8080", "http://open.apps:8080"

	ready := func(phase string) {
		t.Helper()
		for _, name := range []string{"closed", "open"} {
			resp, err := http.Get("http://" + m.Proxy("apps", name).Admin + "/ready")
			if err != nil {
				t.Fatalf("%s: sidecar apps/%s /ready: %v", phase, name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: sidecar apps/%s /ready: %d, want 200", phase, name, resp.StatusCode)
			}
		}
	}
	outage := func(phase string) {
		t.Helper()
		for i := 0; i < 3; i++ {
			if r := do(t, c, "GET", closed+"/orders", nil, "x-ext-authz", "allow"); r.Status != 503 {
				t.Errorf("%s: fail-closed GET /orders: %d %s, want statusOnError 503", phase, r.Status, r.Body)
			}
			r := do(t, c, "GET", open+"/orders", nil)
			if r.Status != 200 {
				t.Errorf("%s: fail-open GET /orders: %d %s, want 200 from the app", phase, r.Status, r.Body)
				continue
			}
			if got := echoed(t, r).Get("x-ext-authz-check-result"); got != "" {
				t.Errorf("%s: fail-open request reached the app with a check result %q", phase, got)
			}
		}
		ready(phase)
	}
	working := func(phase string, authz *process) {
		t.Helper()
		before := len(authzChecks(authz.out.String()))
		meshtest.Eventually(t, 10*time.Second, phase+": fail-closed allowed again", func() error {
			r := do(t, c, "GET", closed+"/orders", nil, "x-ext-authz", "allow")
			if r.Status != 200 {
				return fmt.Errorf("%d %s", r.Status, r.Body)
			}
			if got := echoed(t, r).Get("x-ext-authz-check-result"); got != "allowed" {
				return fmt.Errorf("app saw check result %q", got)
			}
			return nil
		})
		if r := do(t, c, "GET", closed+"/orders", nil); r.Status != 403 {
			t.Errorf("%s: fail-closed GET /orders without the header: %d %s, want the authorizer's 403", phase, r.Status, r.Body)
		}
		if r := do(t, c, "GET", open+"/orders", nil); r.Status != 403 {
			t.Errorf("%s: fail-open GET /orders without the header: %d %s, want the authorizer's 403 (it answers now)", phase, r.Status, r.Body)
		}
		if r := do(t, c, "GET", open+"/orders", nil, "x-ext-authz", "allow"); r.Status != 200 || echoed(t, r).Get("x-ext-authz-check-result") != "allowed" {
			t.Errorf("%s: fail-open GET /orders allowed: %d %s", phase, r.Status, r.Body)
		}
		if n := len(authzChecks(authz.out.String())); n <= before {
			t.Errorf("%s: the authorizer answered no checks", phase)
		}
		ready(phase)
	}

	outage("authorizer down")
	a := startAuthorizer(t, b, flakyAddr)
	working("authorizer up", a)
	a.stop()
	outage("authorizer stopped")
	slow := startAuthorizer(t, b, flakyAddr, "-delay", "3s")
	outage("authorizer slower than the timeout")
	// The sidecar's log says why: the check timed out, not refused.
	meshtest.Eventually(t, 5*time.Second, "fail-closed sidecar logs the check timeout", func() error {
		lb, err := os.ReadFile(filepath.Join(m.State, "logs", "apps.closed.proxy.log"))
		if err != nil {
			return err
		}
		for _, l := range jsonLines(string(lb)) {
			if l["provider"] == "authz-fail-closed" && strings.Contains(str(l["error"]), "deadline exceeded") {
				return nil
			}
		}
		return errors.New("no ext_authz timeout logged")
	})
	slow.stop()
	working("authorizer back", startAuthorizer(t, b, flakyAddr))
}
