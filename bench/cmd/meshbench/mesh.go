package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scenario is one Palisade configuration measured on the two-hop path.
type scenario struct {
	Name    string // short, for file names
	Title   string
	Extra   func(token *jwtMinter) string // YAML added to the mesh's config
	Header  string                        // sent with every request ("" for none)
	Checks  []check                       // asserted before measuring
	Timeout time.Duration
}

// check is a request the scenario must answer in a given way, so a
// benchmark never measures a misconfigured mesh.
type check struct {
	Path, Header string
	Want         int
}

const meshYAML = `trustDomain: cluster.local
rootNamespace: istio-system
`

const baseYAML = `apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata:
  name: backend
  namespace: bench
  labels: {app: backend}
spec:
  serviceAccount: backend
  ports:
  - {name: http, number: 8080, protocol: HTTP}
  - {name: tcp, number: 9000, protocol: TCP}
  command: meshbench
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata:
  name: client
  namespace: bench
  labels: {app: client}
spec:
  serviceAccount: client
  ports:
  - {name: http, number: 8080, protocol: HTTP}
  command: fortio
`

// manyPolicies is 100 AuthorizationPolicies: 95 select other workloads
// (the control plane keeps them from the backend's sidecar), 5 apply to
// the backend and are evaluated on every request.
func manyPolicies(*jwtMinter) string {
	var b strings.Builder
	for i := range 95 {
		fmt.Fprintf(&b, `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-%d, namespace: bench}
spec:
  selector: {matchLabels: {app: other-%d}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bench/sa/caller-%d"]}}]
    to: [{operation: {methods: ["GET", "POST"], paths: ["/api/%d/*"]}}]
`, i, i%20, i, i)
	}
	b.WriteString(`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: bench}
spec:
  selector: {matchLabels: {app: backend}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-flagged, namespace: bench}
spec:
  selector: {matchLabels: {app: backend}}
  action: DENY
  rules:
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-other-namespaces, namespace: bench}
spec:
  selector: {matchLabels: {app: backend}}
  action: ALLOW
  rules:
  - from: [{source: {namespaces: ["frontend", "batch"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: bench}
spec:
  selector: {matchLabels: {app: backend}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bench/sa/client"]}}]
    to: [{operation: {methods: ["GET", "HEAD"], paths: ["/", "/items/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-tcp, namespace: bench}
spec:
  selector: {matchLabels: {app: backend}}
  action: ALLOW
  rules:
  - to: [{operation: {ports: ["9000"]}}]
`)
	return b.String()
}

// jwtPolicy validates an ES256 token against inline JWKS and allows only
// the benchmark's issuer, subject and group claim.
func jwtPolicy(m *jwtMinter) string {
	return fmt.Sprintf(`---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: bench-jwt, namespace: bench}
spec:
  selector: {matchLabels: {app: backend}}
  jwtRules:
  - issuer: %s
    audiences: [bench]
    jwks: '%s'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-group, namespace: bench}
spec:
  selector: {matchLabels: {app: backend}}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["%s/bench-user"]}}]
    when: [{key: "request.auth.claims[group]", values: ["bench"]}]
  - to: [{operation: {ports: ["9000"]}}]
`, m.Issuer, m.JWKS, m.Issuer)
}

var scenarios = []scenario{
	{Name: "palisade", Title: "Palisade, no policy",
		Checks: []check{{Path: "/", Want: 200}}},
	{Name: "palisade-authz", Title: "Palisade, 100 AuthorizationPolicies (5 apply)", Extra: manyPolicies,
		Checks: []check{{Path: "/", Want: 200}, {Path: "/admin", Want: 403}, {Path: "/", Header: "x-block: yes", Want: 403}}},
	{Name: "palisade-jwt", Title: "Palisade, JWT + policy on claims", Extra: jwtPolicy, Header: "bearer",
		Checks: []check{{Path: "/", Want: 403}, {Path: "/", Header: "Authorization: Bearer not.a.jwt", Want: 401}, {Path: "/", Header: "bearer", Want: 200}}},
}

// palisadeMesh is a control plane, the backend's sidecar and the client's
// sidecar, started by hand as an operator would.
type palisadeMesh struct {
	cp, server, client *proc
	HTTP, TCP          string // the client sidecar's outbound ports
	ClientAdmin        string
	ServerAdmin        string
}

func (m *palisadeMesh) stop() {
	m.client.stop()
	m.server.stop()
	m.cp.stop()
}

func (m *palisadeMesh) pids() []int { return []int{m.client.pid(), m.server.pid()} }

func startPalisade(ctx context.Context, e *env, sc scenario, be *backendAddrs) (_ *palisadeMesh, err error) {
	dir := filepath.Join(e.work, sc.Name)
	cfg, state := filepath.Join(dir, "config"), filepath.Join(dir, "state")
	for _, d := range []string{cfg, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	yaml := baseYAML
	if sc.Extra != nil {
		yaml += sc.Extra(e.jwt)
	}
	if err := os.WriteFile(filepath.Join(cfg, "mesh.yaml"), []byte(meshYAML), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg, "bench.yaml"), []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	m := &palisadeMesh{}
	defer func() {
		if err != nil {
			m.stop()
		}
	}()
	cpAddr := freeAddr()
	m.cp, err = start(sc.Name+"-control-plane", dir, nil, e.bin("palisade"), "control-plane", "--config", cfg, "--state", state,
		"--listen", cpAddr, "--admin", freeAddr())
	if err != nil {
		return m, err
	}
	sock := filepath.Join(state, "control.sock")
	// The trust bundle: every root the control plane's CA holds, as
	// palisade up writes it for its sidecars.
	bundle := filepath.Join(dir, "root-cert.pem")
	if err := waitFor(20*time.Second, func() error {
		if m.cp.exited() {
			return fmt.Errorf("control plane exited: %s", m.cp.tail())
		}
		if _, err := os.Stat(sock); err != nil {
			return err
		}
		roots, _ := filepath.Glob(filepath.Join(state, "ca", "roots", "*", "root-cert.pem"))
		if len(roots) == 0 {
			return fmt.Errorf("no root certificate under %s yet", state)
		}
		var pem []byte
		for _, r := range roots {
			b, err := os.ReadFile(r)
			if err != nil {
				return err
			}
			pem = append(pem, b...)
		}
		return os.WriteFile(bundle, pem, 0o644)
	}); err != nil {
		return m, err
	}
	token := func(sa string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, dir, &out, nil, e.bin("palisade"), "join-token", "--state", state, "--namespace", "bench", "--service-account", sa)
		if err != nil {
			return "", fmt.Errorf("join-token: %v: %s", err, out.String())
		}
		return strings.TrimSpace(out.String()), nil
	}
	tok, err := token("backend")
	if err != nil {
		return m, err
	}
	common := []string{"--control-plane", cpAddr, "--bundle", bundle, "--access-log", "", "--pprof"}
	if os.Geteuid() == 0 {
		common = append(common, "--allow-root") // the harness runs as root here and in CI
	}
	m.ServerAdmin = freeAddr()
	m.server, err = start(sc.Name+"-server-sidecar", dir, []string{"PALISADE_JOIN_TOKEN=" + tok}, e.bin("palisade-proxy"), append([]string{
		"--workload", "bench/backend", "--service-account", "backend", "--label", "app=backend", "--admin", m.ServerAdmin,
		"--inbound", "port=8080,name=http,protocol=HTTP,listen=" + freeAddr() + ",app=" + be.HTTP,
		"--inbound", "port=9000,name=tcp,protocol=TCP,listen=" + freeAddr() + ",app=" + be.TCP,
	}, common...)...)
	if err != nil {
		return m, err
	}
	if tok, err = token("client"); err != nil {
		return m, err
	}
	m.HTTP, m.TCP, m.ClientAdmin = freeAddr(), freeAddr(), freeAddr()
	m.client, err = start(sc.Name+"-client-sidecar", dir, []string{"PALISADE_JOIN_TOKEN=" + tok}, e.bin("palisade-proxy"), append([]string{
		"--workload", "bench/client", "--service-account", "client", "--label", "app=client", "--admin", m.ClientAdmin,
		"--outbound", "listen=" + m.HTTP + ",target=backend.bench:8080",
		"--outbound", "listen=" + m.TCP + ",target=backend.bench:9000",
	}, common...)...)
	if err != nil {
		return m, err
	}
	timeout := 30 * time.Second
	if err := waitFor(timeout, func() error {
		for _, p := range []*proc{m.cp, m.server, m.client} {
			if p.exited() {
				return fmt.Errorf("%s exited: %s", p.name, p.tail())
			}
		}
		return expect(m.HTTP, check{Path: "/", Header: firstHeader(sc, e.jwt), Want: 200})
	}); err != nil {
		return m, err
	}
	for _, c := range sc.Checks {
		if c.Header == "bearer" {
			c.Header = "Authorization: Bearer " + e.jwt.Token
		}
		if err := expect(m.HTTP, c); err != nil {
			return m, fmt.Errorf("%s: %w", sc.Title, err)
		}
	}
	return m, nil
}

func firstHeader(sc scenario, j *jwtMinter) string {
	if sc.Header == "bearer" {
		return "Authorization: Bearer " + j.Token
	}
	return sc.Header
}

// expect sends one request through addr and checks its status.
func expect(addr string, c check) error {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+c.Path, nil)
	req.Host = "backend.bench:8080"
	if k, v, ok := strings.Cut(c.Header, ":"); ok {
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != c.Want {
		return fmt.Errorf("GET %s (%s): status %d, want %d", c.Path, c.Header, resp.StatusCode, c.Want)
	}
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
