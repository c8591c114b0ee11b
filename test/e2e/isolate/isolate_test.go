// Package isolate_test runs the workshop under `palisade up --isolate`:
// every workload in a network namespace of its own, its traffic captured
// by palisade-proxy init's iptables rules, apps calling plain service
// URLs. Needs root; every address is in the mesh's own 10.250.0.0/16,
// reached only from the namespaces the mesh made.
package isolate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/internal/localmesh"
	"palisade.dev/palisade/internal/netns"
	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

// setup builds the binaries where uid 1337 may run them.
func setup(t *testing.T) (*meshtest.Bins, string) {
	t.Helper()
	peers.Root(t)
	peers.Command(t, "curl")
	b := meshtest.Build(t)
	if err := os.Chmod(b.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return b, meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
}

func topology(t *testing.T, state string) *netns.Topology {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(state, localmesh.NetnsStateFile))
	if err != nil {
		t.Fatal(err)
	}
	var topo netns.Topology
	if err := json.Unmarshal(raw, &topo); err != nil {
		t.Fatal(err)
	}
	return &topo
}

func workload(t *testing.T, topo *netns.Topology, name string) netns.Workload {
	t.Helper()
	w, ok := topo.Workload("workshop/" + name)
	if !ok {
		t.Fatalf("no workload %s in %+v", name, topo.Workloads)
	}
	return w
}

// curl runs curl inside n as uid (0: root, captured like any app) and
// returns the HTTP status ("000" when there was no answer) and body.
func curl(t *testing.T, n netns.Namespace, uid uint32, url string) (string, string) {
	t.Helper()
	return curlArgs(t, n, uid, url)
}

// curlArgs is curl with more arguments before the URL (the last one).
func curlArgs(t *testing.T, n netns.Namespace, uid uint32, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}"}, args...)...)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := n.Start(cmd); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // the status says what happened
	s := out.String()
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return s, errOut.String()
	}
	return s[i+1:], s[:i] + errOut.String()
}

// eventually retries check for up to d.
func eventually(t *testing.T, d time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, got := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %s", what, d, got)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// leftovers lists namespaces, and the run directory, of prefix still there.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			left = append(left, f[0])
		}
	}
	if _, err := os.Stat(filepath.Join("/run/palisade", prefix)); err == nil {
		left = append(left, "/run/palisade/"+prefix)
	}
	return left
}

type logLine struct {
	Direction            string `json:"direction"`
	SourcePrincipal      string `json:"source_principal"`
	DestinationPrincipal string `json:"destination_principal"`
	MTLS                 bool   `json:"mtls"`
	ResponseCode         int    `json:"response_code"`
}

// accessLog reads a sidecar's access log records.
func accessLog(t *testing.T, state, name string) []logLine {
	t.Helper()
	f, err := os.Open(filepath.Join(state, "logs", "workshop."+name+".proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Direction != "" {
			out = append(out, l)
		}
	}
	return out
}

const (
	frontendSA       = "spiffe://cluster.local/ns/workshop/sa/frontend-sa"
	productcatalogSA = "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"
	catalogdetailSA  = "spiffe://cluster.local/ns/workshop/sa/catalogdetail-sa"
)

func TestIsolatedWorkshop(t *testing.T) {
	b, dir := setup(t)
	m := meshtest.Up(t, b, dir, "--isolate")
	topo := topology(t, m.State)
	fe, pc, cd := workload(t, topo, "frontend"), workload(t, topo, "productcatalog"), workload(t, topo, "catalogdetail")
	for _, w := range topo.Workloads {
		if !netns.Network.Contains(w.Addr) {
			t.Fatalf("%s at %s, outside %s", w.Name, w.Addr, netns.Network)
		}
	}

	t.Run("apps call plain service URLs, every hop mTLS", func(t *testing.T) {
		status, body := curl(t, cd.NS, 0, "http://frontend:9000/")
		if status != "200" {
			t.Fatalf("GET http://frontend:9000/ from catalogdetail's namespace: %s %s", status, body)
		}
		body = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(body, "")
		for _, want := range []string{"Table", "Chair",
			"productcatalog was called by: " + frontendSA,
			"catalogdetail was called by: " + productcatalogSA} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q:\n%s", want, body)
			}
		}
		for _, hop := range []struct{ server, client, serverID string }{
			{"frontend", catalogdetailSA, frontendSA},
			{"productcatalog", frontendSA, productcatalogSA},
			{"catalogdetail", productcatalogSA, catalogdetailSA},
		} {
			found := false
			for _, l := range accessLog(t, m.State, hop.server) {
				if l.Direction == "inbound" && l.MTLS && l.SourcePrincipal == hop.client && l.DestinationPrincipal == hop.serverID {
					found = true
				}
			}
			if !found {
				t.Errorf("%s's access log has no inbound mTLS record from %s: %+v", hop.server, hop.client, accessLog(t, m.State, hop.server))
			}
		}
	})

	t.Run("an app port is reached only through its sidecar", func(t *testing.T) {
		url := "http://" + pc.Addr.String() + ":5000/products/"
		// Through frontend's sidecar (any uid but the proxy's is captured).
		if status, body := curl(t, fe.NS, 0, url); status != "200" {
			t.Errorf("frontend app -> %s: %s %s", url, status, body)
		}
		// The proxy's uid escapes frontend's capture: plaintext reaches
		// productcatalog's inbound capture and STRICT resets it.
		if status, body := curl(t, fe.NS, localmesh.ProxyUID, url); status != "000" {
			t.Errorf("uid %d in frontend's namespace -> %s bypassing the sidecar: %s %s", localmesh.ProxyUID, url, status, body)
		}
		// A plain client outside the mesh is reset.
		if status, body := curl(t, topo.Outside.NS, 0, url); status != "000" || !strings.Contains(body, "reset") {
			t.Errorf("client outside the mesh -> %s: %s %s", url, status, body)
		}
	})

	t.Run("outboundTrafficPolicy", func(t *testing.T) {
		ln, err := topo.Outside.NS.Listen("tcp", topo.Outside.Addr.String()+":8081")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "outside the mesh") })} //nolint:errcheck
		go srv.Serve(ln)                                                                                                                       //nolint:errcheck
		defer srv.Close()
		url := "http://" + topo.Outside.Addr.String() + ":8081/"
		mesh := filepath.Join(dir, "mesh.yaml")
		raw, err := os.ReadFile(mesh)
		if err != nil {
			t.Fatal(err)
		}
		setMode := func(mode string) {
			t.Helper()
			if err := os.WriteFile(mesh, append(append([]byte{}, raw...), "outboundTrafficPolicy:\n  mode: "+mode+"\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		defer os.WriteFile(mesh, raw, 0o644) //nolint:errcheck
		if status, body := curl(t, fe.NS, 0, url); status != "200" || !strings.Contains(body, "outside the mesh") {
			t.Errorf("no outboundTrafficPolicy (Istio's default, ALLOW_ANY): %s: %s %s", url, status, body)
		}
		setMode("ALLOW_ANY")
		eventually(t, 15*time.Second, "ALLOW_ANY passes "+url, func() (bool, string) {
			status, body := curl(t, fe.NS, 0, url)
			return status == "200" && strings.Contains(body, "outside the mesh"), status + " " + body
		})
		setMode("REGISTRY_ONLY")
		eventually(t, 15*time.Second, "REGISTRY_ONLY refuses "+url, func() (bool, string) {
			status, body := curl(t, fe.NS, 0, url)
			return status == "502", status + " " + body
		})
		if status, body := curl(t, fe.NS, 0, "http://productcatalog:5000/products/"); status != "200" {
			t.Errorf("REGISTRY_ONLY: a mesh service: %s %s", status, body)
		}
		setMode("ALLOW_ANY")
		eventually(t, 15*time.Second, "ALLOW_ANY again passes "+url, func() (bool, string) {
			status, body := curl(t, fe.NS, 0, url)
			return status == "200", status + " " + body
		})
	})

	t.Run("nothing in the machine's own namespace, nothing leaves", func(t *testing.T) {
		hostSide(t)
		// An address outside every range the mesh made never answers:
		// passed through or refused by the sidecar, it would reach the
		// workload's host at most, which has no route for it.
		if status, body := curl(t, fe.NS, 0, "http://198.51.100.7/"); status == "200" {
			t.Errorf("198.51.100.7 (outside every range the mesh made) answered: %s", body)
		}
	})

	m.Stop()
	if left := leftovers(t, topo.Prefix); len(left) > 0 {
		t.Errorf("left after palisade up stopped: %v", left)
	}
	hostSide(t)
}

// hostSide checks the machine's own namespace holds no route into the
// mesh's range and no capture chain: everything lives in the mesh's
// namespaces.
func hostSide(t *testing.T) {
	t.Helper()
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(routes), "10.250.") {
		t.Errorf("the machine's own namespace routes into 10.250.0.0/16:\n%s", routes)
	}
	for _, b := range []string{"iptables-nft-save", "iptables-legacy-save"} {
		out, err := exec.Command(b).Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "ISTIO_") {
			t.Errorf("%s in the machine's own namespace shows capture rules:\n%s", b, out)
		}
	}
}

// TestIsolatedCleanupAfterCrash: palisade up killed outright leaves its
// namespaces; the next start removes them before making its own.
func TestIsolatedCleanupAfterCrash(t *testing.T) {
	b, dir := setup(t)
	m := meshtest.Up(t, b, dir, "--isolate")
	topo := topology(t, m.State)
	if err := syscall.Kill(m.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the children die with it (Pdeathsig)
	if left := leftovers(t, topo.Prefix); len(left) == 0 {
		t.Fatal("nothing left after a crash: the test proves nothing")
	}
	cmd := exec.Command(b.Palisade, "up", "--isolate", "--state", m.State, "--control-plane", "127.0.0.1:0", "--admin", "127.0.0.1:0", dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for ctx.Err() == nil && !strings.Contains(out.String(), "Ctrl-C stops everything") {
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt) //nolint:errcheck
	cmd.Wait()                       //nolint:errcheck
	if !strings.Contains(out.String(), "Ctrl-C stops everything") {
		t.Fatalf("second start:\n%s", out.String())
	}
	if left := leftovers(t, topo.Prefix); len(left) > 0 {
		t.Errorf("left after the second run: %v", left)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const denyProductcatalog = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-productcatalog
  namespace: workshop
spec:
  selector:
    matchLabels:
      app: catalogdetail
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/workshop/sa/productcatalog-sa"]
`

// TestIsolatedHostLinkCut: with --hosts 3 each workload has a host of its
// own. catalogdetail's host loses its link: catalogdetail still serves,
// through its own sidecar, with the config and certificate it has; the
// others no longer reach it. A policy written meanwhile reaches it once
// the link is back, with no restart.
func TestIsolatedHostLinkCut(t *testing.T) {
	b, dir := setup(t)
	m := meshtest.Up(t, b, dir, "--isolate", "--hosts", "3")
	topo := topology(t, m.State)
	if len(topo.Hosts) != 3 {
		t.Fatalf("%d hosts", len(topo.Hosts))
	}
	pc, cd := workload(t, topo, "productcatalog"), workload(t, topo, "catalogdetail")
	seen := map[int]bool{}
	for _, w := range topo.Workloads {
		seen[w.Host] = true
	}
	if len(seen) != 3 {
		t.Fatalf("workloads not spread over the hosts: %+v", topo.Workloads)
	}
	detail := "http://catalogdetail:3000/catalogDetail"
	if status, body := curl(t, pc.NS, 0, detail); status != "200" {
		t.Fatalf("productcatalog -> catalogdetail before the cut: %s %s", status, body)
	}
	ctx := context.Background()
	if err := topo.SetHostLink(ctx, cd.Host, false); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			topo.SetHostLink(ctx, cd.Host, true) //nolint:errcheck
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "deny-productcatalog.yaml"), []byte(denyProductcatalog), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the push would have arrived by now
	if status, body := curl(t, cd.NS, 0, detail); status != "200" {
		t.Errorf("link cut: catalogdetail calling itself through its sidecar: %s %s", status, body)
	}
	if status, body := curl(t, pc.NS, 0, detail); status == "200" || status == "403" {
		t.Errorf("link cut: productcatalog still reaches catalogdetail: %s %s", status, body)
	}
	// The control plane sees it gone once its keepalive goes unanswered.
	eventually(t, 90*time.Second, "the control plane marks catalogdetail disconnected", func() (bool, string) {
		p := m.Proxy("workshop", "catalogdetail")
		return !p.Connected, fmt.Sprintf("%+v", p)
	})
	if status, body := curl(t, cd.NS, 0, detail); status != "200" {
		t.Errorf("cut off from the control plane: catalogdetail calling itself: %s %s", status, body)
	}
	if err := topo.SetHostLink(ctx, cd.Host, true); err != nil {
		t.Fatal(err)
	}
	restored = true
	eventually(t, 90*time.Second, "catalogdetail's sidecar reconnects", func() (bool, string) {
		p := m.Proxy("workshop", "catalogdetail")
		return p.Connected, fmt.Sprintf("%+v", p)
	})
	eventually(t, 90*time.Second, "catalogdetail applies the policy written while it was away", func() (bool, string) {
		status, body := curl(t, pc.NS, 0, detail)
		return status == "403" && strings.Contains(body, "RBAC: access denied"), status + " " + body
	})
	if status, body := curl(t, cd.NS, 0, detail); status != "200" {
		t.Errorf("after resync: catalogdetail calling itself: %s %s", status, body)
	}
}
