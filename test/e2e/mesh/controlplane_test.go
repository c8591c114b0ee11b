package mesh_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/test/e2e/meshtest"
)

// proc is one process the test started itself.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }() //nolint:errcheck
	t.Cleanup(func() { p.stop(t) })
	return p
}

// tail is the end of the process's log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process with SIGTERM (SIGKILL after 5 s) and checks
// nothing of its group is left.
func (p *proc) stop(t *testing.T) {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s did not stop within 5s of SIGTERM", p.name)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	for _, pid := range meshtest.Leftovers([]int{p.cmd.Process.Pid}, 2*time.Second) {
		t.Errorf("%s left process %d running", p.name, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func waitHTTP(t *testing.T, what, u string, p *proc) {
	t.Helper()
	meshtest.Eventually(t, 30*time.Second, what, func() error {
		if p != nil && p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, p.tail())
		}
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}

// manualWorkload is a sidecar and its app started by the test.
type manualWorkload struct {
	name, sa, mode string
	port           int
	protocol       string
	inbound, app   string
	admin, proxy   string
	outbound       string // a local port of the sidecar for one upstream, if any
	target         string
	sidecar, appP  *proc
}

// Proxies keep serving, with their last config and certificates, when
// the control plane is killed; when it comes back on the same address and
// state they reconnect (their certificates authenticate them; the join
// tokens died with the old process) and apply new policy.
func TestControlPlaneKilledAndRestarted(t *testing.T) {
	b := meshtest.Build(t)
	meshapp := b.BuildMain(t, "./test/e2e/mesh/meshapp")
	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "test", "e2e", "mesh", "testdata", "manual"))
	state := t.TempDir()
	logs := filepath.Join(state, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(b.Palisade, "ca", "init", "--state", filepath.Join(state, "ca")).CombinedOutput(); err != nil {
		t.Fatalf("palisade ca init: %v\n%s", err, out)
	}
	bundle := filepath.Join(state, "ca", "roots", "1", "root-cert.pem")
	grpcAddr, adminAddr := meshtest.HeldAddr(t), meshtest.HeldAddr(t)
	startCP := func() *proc {
		p := startProc(t, "control plane", filepath.Join(logs, "control-plane.log"), nil, b.Palisade,
			"control-plane", "--config", dir, "--state", state, "--listen", grpcAddr, "--admin", adminAddr)
		waitHTTP(t, "control plane admin", "http://"+adminAddr+"/api/status", p)
		return p
	}
	cp := startCP()

	ws := []*manualWorkload{
		{name: "web", sa: "web-sa", mode: "http", port: 8080, protocol: "HTTP"},
		{name: "echo", sa: "echo-sa", mode: "tcp", port: 9090, protocol: "TCP"},
		{name: "client", sa: "client-sa", mode: "http", port: 8080, protocol: "HTTP", target: "echo:9090"},
	}
	for _, w := range ws {
		w.inbound, w.app, w.admin, w.proxy = meshtest.HeldAddr(t), meshtest.HeldAddr(t), meshtest.HeldAddr(t), meshtest.HeldAddr(t)
		tok, err := exec.Command(b.Palisade, "join-token", "--state", state, "--namespace", "e2e", "--service-account", w.sa).Output()
		if err != nil {
			t.Fatalf("palisade join-token: %v", err)
		}
		args := []string{"--workload", "e2e/" + w.name, "--service-account", w.sa, "--label", "app=" + w.name,
			"--control-plane", grpcAddr, "--trust-domain", "cluster.local", "--bundle", bundle,
			"--inbound", fmt.Sprintf("port=%d,name=%s,protocol=%s,listen=%s,app=%s", w.port, strings.ToLower(w.protocol), w.protocol, w.inbound, w.app),
			"--http-proxy", w.proxy, "--admin", w.admin}
		args = append(args, meshtest.AllowRoot()...)
		if w.target != "" {
			w.outbound = meshtest.HeldAddr(t)
			args = append(args, "--outbound", "listen="+w.outbound+",target="+w.target)
		}
		w.sidecar = startProc(t, w.name+" sidecar", filepath.Join(logs, "e2e."+w.name+".proxy.log"),
			[]string{"PALISADE_JOIN_TOKEN=" + strings.TrimSpace(string(tok))}, b.Proxy, args...)
	}
	for _, w := range ws {
		waitHTTP(t, w.name+" sidecar ready", "http://"+w.admin+"/ready", w.sidecar)
		_, port, _ := net.SplitHostPort(w.app)
		w.appP = startProc(t, w.name, filepath.Join(logs, "e2e."+w.name+".log"),
			[]string{"PORT=" + port, "HTTP_PROXY=http://" + w.proxy, "HTTPS_PROXY=http://" + w.proxy, "NO_PROXY=127.0.0.1"}, meshapp, w.mode)
	}
	web, client := ws[0], ws[2]
	waitHTTP(t, "web app", "http://"+web.app+"/ping", web.appP)

	pu, _ := url.Parse("http://" + client.proxy)
	mesh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
	get := func(path string) (int, string, error) {
		resp, err := mesh.Get("http://web:8080" + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	echo := func() error {
		c, err := net.DialTimeout("tcp", client.outbound, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte("through --outbound and mTLS\n")
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("echoed %q", got)
		}
		return nil
	}
	meshtest.Eventually(t, 20*time.Second, "mesh request before the kill", func() error {
		code, body, err := get("/before")
		if err != nil || code != 200 || !strings.Contains(body, clientID) {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return echo()
	})
	allConnected := func() error {
		var ps []controlplane.ProxyStatus
		resp, err := http.Get("http://" + adminAddr + "/api/proxies")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
			return err
		}
		n := 0
		for _, p := range ps {
			if p.Connected {
				n++
			}
		}
		if n != len(ws) {
			return fmt.Errorf("%d of %d proxies connected: %+v", n, len(ws), ps)
		}
		return nil
	}
	meshtest.Eventually(t, 20*time.Second, "every proxy connected", allConnected)

	// A backup of the state directory, restored for the second restart;
	// and requests every 20ms from here to the end, none of which may
	// fail.
	backup := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(state, "ca"), backup).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	load := meshtest.StartLoad(t, mesh, 20*time.Millisecond, func() (*http.Request, error) {
		return http.NewRequest("GET", "http://web:8080/load", nil)
	}, func(status int, body []byte) error {
		if status != 200 || !strings.Contains(string(body), clientID) {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})

	// kill -9: no goodbye to the proxies.
	if err := cp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-cp.done
	killed := time.Now()
	t.Logf("%s control plane killed", killed.Format("15:04:05.000"))
	var n int
	for time.Since(killed) < 3*time.Second {
		code, body, err := get(fmt.Sprintf("/while-away/%d", n))
		if err != nil || code != 200 || !strings.Contains(body, clientID) {
			t.Fatalf("mesh request %d without the control plane: %d %s %v", n, code, body, err)
		}
		if err := echo(); err != nil {
			t.Fatalf("TCP through the mesh without the control plane: %v", err)
		}
		n++
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d HTTP requests and %d new mTLS TCP connections succeeded in the 3s without a control plane", n, n)
	for _, w := range ws {
		if w.sidecar.exited() || w.appP.exited() {
			t.Fatalf("%s died with the control plane", w.name)
		}
	}

	away := load.Snapshot()
	cp = startCP()
	restarted := time.Now()
	t.Logf("%s control plane restarted", restarted.Format("15:04:05.000"))
	meshtest.Eventually(t, 30*time.Second, "every proxy reconnected to the restarted control plane", allConnected)
	meshtest.Eventually(t, 15*time.Second, "requests pass again", func() error {
		if code, _, err := get("/settled"); err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	reconnecting := []meshtest.LoadResult{load.Snapshot()}
	t.Logf("every proxy reconnected %v after the restart", time.Since(restarted).Round(time.Millisecond))

	// A policy written now reaches web's sidecar through the new
	// control plane.
	writeFile(t, dir, "deny-client.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-client-admin
  namespace: e2e
spec:
  selector:
    matchLabels:
      app: web
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/e2e/sa/client-sa"]
    to:
    - operation:
        paths: ["/admin*"]
`)
	meshtest.Eventually(t, 15*time.Second, "DENY applied after the restart", func() error {
		code, body, err := get("/admin/x")
		if err != nil {
			return err
		}
		if code != http.StatusForbidden || strings.TrimSpace(body) != "RBAC: access denied" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	if code, body, err := get("/after"); err != nil || code != 200 || !strings.Contains(body, clientID) {
		t.Errorf("request the DENY does not match: %d %s %v", code, body, err)
	}
	if err := echo(); err != nil {
		t.Errorf("TCP after the restart: %v", err)
	}
	if cp.exited() {
		t.Errorf("the restarted control plane exited during the test")
	}

	// Killed again, and started on its state directory restored from
	// the backup: the same CA, so the proxies' certificates still
	// authenticate them; they reconnect and take new policy.
	if err := cp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-cp.done
	if err := os.RemoveAll(filepath.Join(state, "ca")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(backup, "ca"), state).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	time.Sleep(time.Second) // traffic with no control plane at all
	settled := load.Snapshot()
	startCP() // stopped by the test's cleanup
	restarted = time.Now()
	meshtest.Eventually(t, 30*time.Second, "every proxy reconnected to the control plane on its restored state", allConnected)
	meshtest.Eventually(t, 15*time.Second, "requests pass again", func() error {
		if code, _, err := get("/settled"); err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	reconnecting = append(reconnecting, load.Snapshot())
	t.Logf("every proxy reconnected %v after the restart on the restored state", time.Since(restarted).Round(time.Millisecond))
	writeFile(t, dir, "deny-client-restored.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-client-restored
  namespace: e2e
spec:
  selector:
    matchLabels:
      app: web
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/restored*"]
`)
	meshtest.Eventually(t, 15*time.Second, "DENY applied after the restart on the restored state", func() error {
		code, body, err := get("/restored/x")
		if err != nil {
			return err
		}
		if code != http.StatusForbidden {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	res := load.Stop()
	t.Logf("under load through both kills and restarts: %d requests sent, %d failed", res.Sent, len(res.Failures))
	// None fails: not while the control plane is away, not while the
	// proxies reconnect one by one to a process that has just started
	// (it holds their first push until the others are back), not after.
	if n := len(res.Failures); n > 0 || res.Sent < 100 {
		t.Errorf("%d of %d requests failed: %.2000s", n, res.Sent, strings.Join(res.Failures, "\n"))
	}
	t.Logf("failed: %d with the control plane away, %d until every proxy was back after the restart, %d after the restart on the restored state",
		len(away.Failures), len(reconnecting[0].Failures)-len(away.Failures), len(reconnecting[1].Failures)-len(settled.Failures))
}
