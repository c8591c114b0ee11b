package policy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// peerBinary finds a prebuilt peer through env or under tools/opa/bin. It
// skips the test when the binary is absent, unless CI is set: then a
// missing peer fails the test.
func peerBinary(t testing.TB, b *meshtest.Bins, env, name string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join(b.Root, "tools", "opa", "bin", name)
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found at %s (set %s, or run tools/opa/build.sh)", name, path, env)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// freeAddr returns a 127.0.0.1 address nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func portOf(t testing.TB, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requireFree fails the test when something already listens on addr: the
// scenario's ServiceEntry names a fixed address, so a peer must own it.
func requireFree(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s is taken (%v): the scenario's ServiceEntry sends ext_authz there, so the test's own OPA must listen on it; stop whatever holds it", addr, err)
	}
	ln.Close()
}

// process is a peer the test started, with its combined output.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *lineBuffer
	done chan struct{}
}

// start runs bin with args, stops it when the test ends and logs its
// output if the test failed.
func start(t testing.TB, name, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	p := &process{name: name, cmd: cmd, out: &lineBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

// stop interrupts the process and waits for it (killing it after 10s).
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitListening waits until addr accepts TCP connections.
func (p *process) waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			t.Fatalf("%s exited before it listened on %s:\n%s", p.name, addr, p.out.String())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 30s: %v\n%s", p.name, addr, err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startOPA runs the OPA Envoy plugin with the workshop's policy, its
// ext_authz gRPC server on grpcAddr and decision logs on the console.
func startOPA(t testing.TB, b *meshtest.Bins, policy, grpcAddr string) *process {
	t.Helper()
	bin := peerBinary(t, b, "PALISADE_OPA_ENVOY", "opa-envoy-plugin")
	requireFree(t, grpcAddr)
	diag := freeAddr(t)
	p := start(t, "opa-envoy-plugin", bin, "run", "--server",
		"--addr="+freeAddr(t),
		"--diagnostic-addr="+diag,
		"--set=plugins.envoy_ext_authz_grpc.addr="+grpcAddr,
		"--set=plugins.envoy_ext_authz_grpc.path=istio/authz/allow",
		"--set=decision_logs.console=true",
		policy)
	// /health?plugins is 200 once every plugin, ext_authz included, is up.
	meshtest.Eventually(t, 30*time.Second, "opa-envoy-plugin health", func() error {
		if p.exited() {
			t.Fatalf("opa-envoy-plugin exited:\n%s", p.out.String())
		}
		resp, err := http.Get("http://" + diag + "/health?plugins")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	p.waitListening(t, grpcAddr)
	return p
}

// startAuthorizer runs examples/authorizer on addr with its per-check log.
func startAuthorizer(t testing.TB, b *meshtest.Bins, addr string, args ...string) *process {
	t.Helper()
	p := start(t, "authorizer "+addr, b.Authorizer, append([]string{"-addr", addr, "-log"}, args...)...)
	p.waitListening(t, addr)
	return p
}

// lineBuffer collects a process's output.
type lineBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lineBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lineBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// jsonLines decodes every line of s that is a JSON object.
func jsonLines(s string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// accessLog is the JSON access log of a workload's sidecar.
func accessLog(t testing.TB, m *meshtest.Mesh, ns, name string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.State, "logs", ns+"."+name+".proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range jsonLines(string(b)) {
		if _, ok := l["authz_decision"]; ok {
			out = append(out, l)
		}
	}
	return out
}

// findAccess waits for the inbound access log line of a request to
// method path (the sidecar writes it once the answer is sent).
func findAccess(t testing.TB, m *meshtest.Mesh, ns, name, method, path string, code int) map[string]any {
	t.Helper()
	var found map[string]any
	meshtest.Eventually(t, 5*time.Second, fmt.Sprintf("access log of %s/%s has %s %s %d", ns, name, method, path, code), func() error {
		for _, l := range accessLog(t, m, ns, name) {
			if l["direction"] == "inbound" && l["method"] == method && l["path"] == path && l["response_code"] == float64(code) {
				found = l
				return nil
			}
		}
		return errors.New("not logged")
	})
	return found
}

// response is what a user sees of one request.
type response struct {
	Status int
	Header http.Header
	Body   string
}

// do sends one request through c and reads the whole answer; redirects
// are not followed, so each answer is the sidecar's or the app's own.
func do(t testing.TB, c *http.Client, method, url string, body io.Reader, header ...string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// writeFile writes content into dir/name.
func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies src into dir under its own name.
func copyFile(t testing.TB, src, dir string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, filepath.Base(src), string(b))
}

// echoWorkload is a Workload running the echo app.
func echoWorkload(ns, name, sa string, port int, labels map[string]string) string {
	var lb strings.Builder
	for k, v := range labels {
		fmt.Fprintf(&lb, "    %s: %s\n", k, v)
	}
	return fmt.Sprintf(`apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata:
  name: %s
  namespace: %s
  labels:
%sspec:
  serviceAccount: %s
  ports:
  - name: http
    number: %d
    protocol: HTTP
  command: echoapp
  env:
    ECHO_NAME: %s
  readiness:
    httpGet:
      path: /ping
---
`, name, ns, lb.String(), sa, port, name)
}
