// Package peers helps tests run the real third-party servers Palisade is
// tested against (Open Policy Agent, Dex, CFSSL, openssl): finding the
// binaries that tools/*/build.sh made, free loopback addresses, and
// collecting a process's output.
package peers

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binary finds a peer built by tools/<tool>/build.sh: $env when set, else
// tools/<tool>/bin/<name> in this module. Without it the test skips, unless
// CI is set: then it fails, so CI never passes by skipping.
func Binary(t testing.TB, env, tool, name string) string {
	t.Helper()
	p, err := Find(env, tool, name)
	if err != nil {
		missing(t, err.Error())
	}
	return p
}

// Find is Binary without a test: the path of a peer built by
// tools/<tool>/build.sh ($env when set), or an error saying how to get it.
func Find(env, tool, name string) (string, error) {
	p := os.Getenv(env)
	if p == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		p = filepath.Join(root, "tools", tool, "bin", name)
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("%s not found at %s (run tools/%s/build.sh, or set %s)", name, p, tool, env)
	}
	return p, nil
}

// Missing skips the test with msg, or fails it under CI=true, where no
// test may pass by skipping.
func Missing(t testing.TB, msg string) {
	t.Helper()
	missing(t, msg)
}

// Command finds a system command (openssl, curl) in PATH, with the same
// skip-or-fail rule as Binary.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("%s not in PATH (scripts/deps.sh installs it)", name))
	}
	return p
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("peers: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("peers: not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// FreeAddr returns a 127.0.0.1 address nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("peers: listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Output collects a process's output; safe for concurrent writes.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
