package meshtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/localmesh"
)

// Bins are the built binaries.
type Bins struct {
	Dir        string // holds every binary; palisade finds palisade-proxy and workshop-app here
	Palisade   string
	Proxy      string
	Workshop   string
	Authorizer string
	Root       string // the module's root directory
}

var (
	buildOnce sync.Once
	bins      *Bins
	buildErr  error
)

// Build compiles the binaries once per test binary, into a directory that
// lives as long as the process (removed by the OS's temp cleanup).
func Build(t testing.TB) *Bins {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "palisade-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/palisade", "./cmd/palisade-proxy", "./examples/workshop/cmd/workshop-app", "./examples/authorizer")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		bins = &Bins{Dir: dir, Root: root, Palisade: filepath.Join(dir, "palisade"), Proxy: filepath.Join(dir, "palisade-proxy"),
			Workshop: filepath.Join(dir, "workshop-app"), Authorizer: filepath.Join(dir, "authorizer")}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

var (
	extraMu sync.Mutex
	extra   = map[string]string{}
)

// BuildMain compiles one more main package (a path relative to the
// module root, such as ./test/e2e/mesh/meshapp) into b.Dir, once per test
// binary, and returns the binary's path. palisade up finds a Workload's
// command by name in b.Dir first.
func (b *Bins) BuildMain(t testing.TB, pkg string) string {
	t.Helper()
	extraMu.Lock()
	defer extraMu.Unlock()
	if p, ok := extra[pkg]; ok {
		return p
	}
	out := filepath.Join(b.Dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = b.Root
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, o)
	}
	extra[pkg] = out
	return out
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// CopyDir copies the YAML files of src (not subdirectories) into a new
// temporary directory and returns it.
func CopyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// Mesh is a running `palisade up`.
type Mesh struct {
	t       testing.TB
	Bins    *Bins
	Dir     string
	State   string
	Admin   string
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	waitErr error
}

// AllowRoot is the flag palisade-proxy (and palisade up, for its
// proxies) needs to run as root, as tests do here and in CI; nil for
// any other user.
func AllowRoot() []string {
	if os.Geteuid() == 0 {
		return []string{"--allow-root"}
	}
	return nil
}

// Up starts `palisade up dir` with extra flags, on free ports and a state
// directory of its own, and waits until every workload's sidecar is
// connected. The mesh is stopped when the test ends.
func Up(t testing.TB, b *Bins, dir string, flags ...string) *Mesh {
	t.Helper()
	state := t.TempDir()
	args := append([]string{"up", "--state", state, "--control-plane", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, AllowRoot()...)
	args = append(args, flags...)
	args = append(args, dir)
	cmd := exec.Command(b.Palisade, args...)
	cmd.Dir = b.Root
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &Mesh{t: t, Bins: b, Dir: dir, State: state, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { m.waitErr = cmd.Wait(); close(m.done) }()
	t.Cleanup(m.Stop)
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-m.done:
			t.Fatalf("palisade up exited: %v\n%s", m.waitErr, out.String())
		default:
		}
		if strings.Contains(out.String(), "Ctrl-C stops everything") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("palisade up not ready after 90s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	b2, err := os.ReadFile(filepath.Join(state, localmesh.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st localmesh.State
	if err := json.Unmarshal(b2, &st); err != nil {
		t.Fatal(err)
	}
	m.Admin = st.AdminAddress
	return m
}

// Output is everything palisade up printed so far.
func (m *Mesh) Output() string { return m.out.String() }

// Stop interrupts palisade up as Ctrl-C does, waits for it, and fails the
// test if any process it started (sidecars, apps, and whatever those
// started) is still alive.
func (m *Mesh) Stop() {
	select {
	case <-m.done:
		return
	default:
	}
	pids := Descendants(m.cmd.Process.Pid)
	_ = m.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
		m.t.Errorf("palisade up did not stop within 20s of Ctrl-C")
	}
	for _, pid := range Leftovers(pids, 2*time.Second) {
		m.t.Errorf("process %d started by palisade up is still running after it stopped: %s", pid, cmdline(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Stopped reports whether palisade up has exited.
func (m *Mesh) Stopped() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// PID is palisade up's process id.
func (m *Mesh) PID() int { return m.cmd.Process.Pid }

// Descendants lists every live process below pid (children, their
// children, and so on), read from /proc.
func Descendants(pid int) []int {
	parent := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscan(e.Name(), &p); err != nil {
			continue
		}
		if pp, ok := ppid(p); ok {
			parent[pp] = append(parent[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range parent[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Leftovers waits up to grace for pids, and every process in their
// process groups, to be gone, and returns those still running. A
// zombie counts as gone.
func Leftovers(pids []int, grace time.Duration) []int {
	deadline := time.Now().Add(grace)
	for {
		var alive []int
		for _, pid := range pids {
			if running(pid) {
				alive = append(alive, pid)
			}
			// A grandchild left in the child's group also counts.
			for _, q := range groupMembers(pid) {
				if q != pid && running(q) {
					alive = append(alive, q)
				}
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ppid(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	var p int
	_, err = fmt.Sscan(f[1], &p)
	return p, err == nil
}

func procState(pid int) (state string, pgrp int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return "", 0
	}
	fmt.Sscan(f[2], &pgrp) //nolint:errcheck
	return f[0], pgrp
}

func running(pid int) bool {
	st, _ := procState(pid)
	return st != "" && st != "Z" && st != "X"
}

// groupMembers lists the processes whose process group is pgid.
func groupMembers(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscan(e.Name(), &p); err != nil {
			continue
		}
		if _, g := procState(p); g == pgid {
			out = append(out, p)
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// Status is `palisade status -o json`, read from the admin API.
func (m *Mesh) Status() []controlplane.WorkloadStatus {
	m.t.Helper()
	var st struct {
		Workloads []controlplane.WorkloadStatus `json:"workloads"`
	}
	m.getJSON("/api/status", &st)
	return st.Workloads
}

// Workload returns one workload's status.
func (m *Mesh) Workload(ns, name string) controlplane.WorkloadStatus {
	m.t.Helper()
	for _, w := range m.Status() {
		if w.Namespace == ns && w.Name == name {
			return w
		}
	}
	m.t.Fatalf("no workload %s/%s in status", ns, name)
	return controlplane.WorkloadStatus{}
}

// Proxy returns the control plane's view of one sidecar (admin and HTTP
// proxy addresses among it).
func (m *Mesh) Proxy(ns, name string) controlplane.ProxyStatus {
	m.t.Helper()
	var ps []controlplane.ProxyStatus
	m.getJSON("/api/proxies", &ps)
	for _, p := range ps {
		if p.ID == ns+"/"+name {
			return p
		}
	}
	m.t.Fatalf("no proxy %s/%s", ns, name)
	return controlplane.ProxyStatus{}
}

// Client returns an HTTP client whose requests leave through the named
// workload's sidecar, as that workload's app would send them: it is a
// client inside the mesh, with that workload's identity.
func (m *Mesh) Client(ns, name string) *http.Client {
	m.t.Helper()
	u, _ := url.Parse("http://" + m.Proxy(ns, name).HTTPProxy)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 15 * time.Second}
}

// Palisade runs the palisade CLI against this mesh's state directory.
func (m *Mesh) Palisade(args ...string) (string, error) {
	cmd := exec.Command(m.Bins.Palisade, args...)
	cmd.Dir = m.Bins.Root
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (m *Mesh) getJSON(path string, v any) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Admin+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		m.t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		m.t.Fatalf("GET %s: %v", path, err)
	}
}

// Eventually retries f every 50 ms until it returns nil or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
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
