package mesh_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/localmesh"
	"palisade.dev/palisade/test/e2e/meshtest"
)

// The README's quick start, from a fresh clone of this checkout's HEAD:
// make build, then bin/palisade up examples/workshop, a mesh request, and
// Ctrl-C leaves nothing running.
func TestFreshCloneQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a fresh clone from scratch")
	}
	for _, tool := range []string{"git", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	b := meshtest.Build(t)
	clone := filepath.Join(t.TempDir(), "palisade")
	run := func(dir, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		t.Logf("%s %s: %v", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	}
	run(b.Root, "git", "clone", "--quiet", "file://"+b.Root, clone)
	run(clone, "make", "build")

	cb := &meshtest.Bins{Dir: filepath.Join(clone, "bin"), Root: clone,
		Palisade: filepath.Join(clone, "bin", "palisade"), Proxy: filepath.Join(clone, "bin", "palisade-proxy"),
		Workshop: filepath.Join(clone, "bin", "workshop-app"), Authorizer: filepath.Join(clone, "bin", "authorizer")}
	m := meshtest.Up(t, cb, "examples/workshop")

	// The table: every workload with its sidecar and app addresses, its
	// SPIFFE ID and STRICT.
	rows := map[string][]string{}
	var header bool
	for _, line := range strings.Split(m.Output(), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "WORKLOAD" {
			header = true
			continue
		}
		if header && len(f) == 6 {
			rows[f[0]] = f
		}
		if header && len(f) == 0 {
			break
		}
	}
	for _, name := range workshopWorkloads {
		f, ok := rows[name]
		if !ok {
			t.Errorf("the table lacks %s:\n%s", name, m.Output())
			continue
		}
		w := m.Workload("workshop", name)
		want := []string{name, "workshop", w.InboundAddress, w.AppAddress, w.SpiffeID, "STRICT"}
		if !slices.Equal(f, want) {
			t.Errorf("table row %q, want %q", f, want)
		}
		if !strings.HasPrefix(w.SpiffeID, "spiffe://cluster.local/ns/workshop/sa/") {
			t.Errorf("%s runs as %s", name, w.SpiffeID)
		}
	}
	resp, err := m.Client("workshop", "frontend").Get("http://frontend:9000/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Table") || !strings.Contains(string(body), "ABC.com") {
		t.Errorf("GET / on frontend: %s\n%s", resp.Status, body)
	}
	state := m.State
	m.Stop() // Ctrl-C; fails the test if anything is left running
	if !strings.Contains(m.Output(), "Stopping ...") {
		t.Errorf("palisade up did not say it was stopping:\n%s", m.Output())
	}
	if _, err := os.Stat(filepath.Join(state, localmesh.StateFile)); !os.IsNotExist(err) {
		t.Errorf("%s is left after Ctrl-C: %v", localmesh.StateFile, err)
	}
}

// Ctrl-C stops every sidecar and app, and what the apps started.
func TestCtrlCLeavesNoProcess(t *testing.T) {
	b := meshtest.Build(t)
	meshapp := b.BuildMain(t, "./test/e2e/mesh/meshapp")
	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "test", "e2e", "mesh", "testdata", "manual"))
	// echo's app is a shell that starts the server and a sleeper of its
	// own: grandchildren of palisade up.
	wl, err := os.ReadFile(filepath.Join(dir, "workloads.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	shell := fmt.Sprintf("command: sh\n  args: [\"-c\", \"sleep 300 & exec %s tcp\"]", meshapp)
	wl = []byte(strings.Replace(string(wl), "command: meshapp\n  args: [tcp]", shell, 1))
	if !strings.Contains(string(wl), "sleep 300") {
		t.Fatal("workloads.yaml: echo's command not found")
	}
	if err := os.WriteFile(filepath.Join(dir, "workloads.yaml"), wl, 0o644); err != nil {
		t.Fatal(err)
	}
	m := meshtest.Up(t, b, dir)
	var all []int
	meshtest.Eventually(t, 10*time.Second, "the sleeper started", func() error {
		all = meshtest.Descendants(m.PID())
		for _, pid := range all {
			if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(c), "sleep\x00300") {
				return nil
			}
		}
		return fmt.Errorf("no sleep 300 among %v", all)
	})
	// 3 sidecars, 3 apps, and the sleeper.
	if len(all) < 7 {
		t.Errorf("palisade up runs %d processes, want at least 7", len(all))
	}
	m.Stop()
	if !m.Stopped() {
		t.Fatal("palisade up still running")
	}
	if left := meshtest.Leftovers(all, 0); len(left) > 0 {
		t.Errorf("left running after Ctrl-C: %v", left)
	}
}

// meshtest's check finds a process left behind, grandchildren included.
func TestLeftoverDetection(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 300 & sleep 300 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }() //nolint:errcheck
	var kids []int
	meshtest.Eventually(t, 5*time.Second, "the shell's children", func() error {
		kids = meshtest.Descendants(cmd.Process.Pid)
		if len(kids) != 2 {
			return fmt.Errorf("descendants %v", kids)
		}
		return nil
	})
	// Killing the shell alone leaves its children running: detected.
	cmd.Process.Kill() //nolint:errcheck
	cmd.Wait()         //nolint:errcheck
	left := meshtest.Leftovers(append([]int{cmd.Process.Pid}, kids...), 200*time.Millisecond)
	slices.Sort(left)
	slices.Sort(kids)
	if !slices.Equal(left, kids) {
		t.Errorf("Leftovers = %v, want the orphaned children %v", left, kids)
	}
	for _, pid := range kids {
		p, _ := os.FindProcess(pid)
		p.Kill() //nolint:errcheck
	}
	if left := meshtest.Leftovers(kids, 5*time.Second); len(left) > 0 {
		t.Errorf("Leftovers after kill = %v", left)
	}
}

// A workload that cannot start fails palisade up with a clear error and
// stops what had started already (the control plane, the first sidecars).
func TestUpFailsCleanly(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/mesh/meshapp")
	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "test", "e2e", "mesh", "testdata", "manual"))
	wl, err := os.ReadFile(filepath.Join(dir, "workloads.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The last workload (echo) has no such command; client and web start.
	wl = []byte(strings.Replace(string(wl), "command: meshapp\n  args: [tcp]", "command: no-such-command-e2e", 1))
	if err := os.WriteFile(filepath.Join(dir, "workloads.yaml"), wl, 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cmd := exec.Command(b.Palisade, append(append([]string{"up", "--state", state, "--control-plane", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, meshtest.AllowRoot()...), dir)...)
	cmd.Dir = b.Root
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("palisade up succeeded without echo's command:\n%s", out)
	}
	if strings.Contains(string(out), "panic:") || !strings.Contains(string(out), "no-such-command-e2e") {
		t.Errorf("palisade up's error does not name the missing command:\n%s", out)
	}
	// Every sidecar's arguments name the state directory.
	time.Sleep(300 * time.Millisecond)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(c), state) {
			t.Errorf("process %s left running: %s", e.Name(), strings.ReplaceAll(string(c), "\x00", " "))
		}
	}
}
