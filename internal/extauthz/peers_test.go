package extauthz

import (
	"bufio"
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

	"palisade.dev/palisade/test/peers"
)

// Real peers: the OPA binaries built by tools/opa/build.sh and the
// examples/authorizer program, run as processes on 127.0.0.1.

// startOPA runs the OPA Envoy plugin with one policy, as REAL-PEERS.md says,
// and returns its ext_authz gRPC address once the plugin reports ready.
func startOPA(t testing.TB, policy, path string) string {
	t.Helper()
	bin := peers.Binary(t, "PALISADE_OPA_ENVOY", "opa", "opa-envoy-plugin")
	policyAbs, err := filepath.Abs(policy)
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr, diagAddr := peers.FreeAddr(t), peers.FreeAddr(t), peers.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "run", "--server",
		"--addr="+httpAddr,
		"--diagnostic-addr="+diagAddr,
		"--set=plugins.envoy_ext_authz_grpc.addr="+grpcAddr,
		"--set=plugins.envoy_ext_authz_grpc.path="+path,
		"--set=decision_logs.console=true",
		policyAbs)
	out := &peers.Output{}
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
	stderr := &peers.Output{}
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
