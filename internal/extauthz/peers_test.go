package extauthz

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Real peers: the OPA binaries built by tools/opa/build.sh and the
// examples/authorizer program, run as processes on 127.0.0.1.

// peerBinary finds a prebuilt binary through env, or under tools/opa/bin. It
// skips the test when the binary is absent, unless CI is set: then a missing
// peer fails the test.
func peerBinary(t testing.TB, env, name string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join("..", "..", "tools", "opa", "bin", name)
	}
	abs, err := filepath.Abs(path)
	if err == nil {
		if _, err = os.Stat(abs); err == nil {
			return abs
		}
	}
	msg := fmt.Sprintf("%s not found at %s (set %s, or run tools/opa/build.sh): %v", name, path, env, err)
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
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer collects a process's output for the failure message.
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

// startOPA runs the OPA Envoy plugin with one policy, as REAL-PEERS.md says,
// and returns its ext_authz gRPC address once the plugin reports ready.
func startOPA(t testing.TB, policy, path string) string {
	t.Helper()
	bin := peerBinary(t, "PALISADE_OPA_ENVOY", "opa-envoy-plugin")
	policyAbs, err := filepath.Abs(policy)
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr, diagAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "run", "--server",
		"--addr="+httpAddr,
		"--diagnostic-addr="+diagAddr,
		"--set=plugins.envoy_ext_authz_grpc.addr="+grpcAddr,
		"--set=plugins.envoy_ext_authz_grpc.path="+path,
		"--set=decision_logs.console=true",
		policyAbs)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start opa-envoy-plugin: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("opa-envoy-plugin output:\n%s", tail(out.String(), 4000))
		}
	})
	// /health?plugins is 200 once every plugin, the ext_authz server
	// included, is up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + diagAddr + "/health?plugins")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("opa-envoy-plugin exited before it was ready:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("opa-envoy-plugin not ready after 30s:\n%s", out.String())
		}
	}
	// The gRPC listener may trail the health endpoint by a moment.
	for {
		c, err := net.DialTimeout("tcp", grpcAddr, time.Second)
		if err == nil {
			c.Close()
			return grpcAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("ext_authz port %s not listening: %v\n%s", grpcAddr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

var authorizerBuild struct {
	once sync.Once
	path string
	err  error
}

// authorizerBinary builds examples/authorizer once per test binary.
func authorizerBinary(t testing.TB) string {
	t.Helper()
	authorizerBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "palisade-authorizer-")
		if err != nil {
			authorizerBuild.err = err
			return
		}
		authorizerBuild.path = filepath.Join(dir, "authorizer")
		cmd := exec.Command("go", "build", "-o", authorizerBuild.path, "palisade.dev/palisade/examples/authorizer")
		if out, err := cmd.CombinedOutput(); err != nil {
			authorizerBuild.err = fmt.Errorf("go build examples/authorizer: %v\n%s", err, out)
		}
	})
	if authorizerBuild.err != nil {
		t.Fatal(authorizerBuild.err)
	}
	return authorizerBuild.path
}

// startAuthorizer runs examples/authorizer and returns its address.
func startAuthorizer(t testing.TB, args ...string) string {
	t.Helper()
	bin := authorizerBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start authorizer: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				lines <- addr
			}
		}
	}()
	select {
	case addr := <-lines:
		return addr
	case <-time.After(20 * time.Second):
		t.Fatalf("authorizer did not start: %s", stderr.String())
		return ""
	}
}
