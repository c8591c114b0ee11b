package identity_test

import (
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

// controlPlane is a `palisade control-plane` the test started.
type controlPlane struct {
	grpc, state, log string
	cmd              *exec.Cmd
	done             chan struct{}
}

// startControlPlane runs palisade control-plane on the config in dir, on
// free ports, with a state directory of its own and extra flags; it
// returns once the control plane serves.
func startControlPlane(t *testing.T, b *meshtest.Bins, dir string, extra ...string) *controlPlane {
	t.Helper()
	cp := &controlPlane{grpc: meshtest.HeldAddr(t), state: t.TempDir(), log: filepath.Join(t.TempDir(), "control-plane.log"), done: make(chan struct{})}
	logf, err := os.Create(cp.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"control-plane", "--config", dir, "--state", cp.state, "--listen", cp.grpc, "--admin", meshtest.HeldAddr(t)}, extra...)
	cp.cmd = exec.Command(b.Palisade, args...)
	cp.cmd.Stdout, cp.cmd.Stderr = logf, logf
	cp.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cp.cmd.Wait(); logf.Close(); close(cp.done) }() //nolint:errcheck
	t.Cleanup(func() {
		_ = syscall.Kill(-cp.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-cp.done:
		case <-time.After(10 * time.Second):
			t.Errorf("palisade control-plane did not stop within 10s of SIGTERM")
			_ = syscall.Kill(-cp.cmd.Process.Pid, syscall.SIGKILL)
			<-cp.done
		}
	})
	meshtest.Eventually(t, 30*time.Second, "palisade control-plane to serve", func() error {
		select {
		case <-cp.done:
			t.Fatalf("palisade control-plane exited:\n%s", cp.output())
		default:
		}
		if !strings.Contains(cp.output(), "control plane serving") {
			return os.ErrNotExist
		}
		return nil
	})
	return cp
}

func (cp *controlPlane) output() string { return string(mustReadQuiet(cp.log)) }

func (cp *controlPlane) joinToken(t *testing.T, b *meshtest.Bins, ns, sa string) string {
	t.Helper()
	out, err := exec.Command(b.Palisade, "join-token", "--state", cp.state, "--namespace", ns, "--service-account", sa).CombinedOutput()
	tok := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(tok, "palisade-join.") {
		t.Fatalf("palisade join-token: %v\n%s", err, out)
	}
	return tok
}

// An operator plugs in an intermediate made with openssl the way Istio's
// tools/certs does it (RSA root and intermediate, cert-chain.pem =
// intermediate + root), runs palisade control-plane --cacerts on it with a
// max workload certificate TTL, and joins a sidecar asking for an RSA key:
//   - asking for more than the max is refused, and the join token is kept;
//   - the same token then gets a chain that openssl verifies against the
//     operator's root-cert.pem, with the RSA key and the TTL asked for.
func TestPlugInCACertsFromIstioTooling(t *testing.T) {
	t.Parallel()
	b := meshtest.Build(t)
	peers.Command(t, "openssl")
	cacerts := filepath.Join(t.TempDir(), "cluster1")
	if out, err := exec.Command("sh", filepath.Join(b.Root, "internal", "ca", "testdata", "istio-cacerts.sh"), cacerts, "pkcs1", "2048").CombinedOutput(); err != nil {
		t.Fatalf("istio-cacerts.sh: %v\n%s", err, out)
	}
	config := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	// --cacerts-optional as the installed Deployment passes it: the
	// plug-in, present, is used.
	cp := startControlPlane(t, b, config, "--cacerts", cacerts, "--cacerts-optional", "--max-workload-cert-ttl", "48h")
	rootFile := filepath.Join(cacerts, "root-cert.pem")
	tok := cp.joinToken(t, b, "workshop", "legacy-sa")

	t.Run("over the max is refused before the token is spent", func(t *testing.T) {
		s := startProxy(t, b.Proxy, cp.grpc, rootFile, "workshop/legacy", "legacy-sa", tok, "--cert-ttl", "72h", "--key-type", "rsa-2048")
		meshtest.Eventually(t, 30*time.Second, "the 72h request refused, and the sidecar told why", func() error {
			if !strings.Contains(cp.output(), "refused certificate request before authentication") ||
				!strings.Contains(s.output(), "requested TTL exceeds the maximum allowed TTL: requested 72h0m0s, max 48h0m0s") {
				return os.ErrNotExist
			}
			return nil
		})
		if strings.Contains(s.output(), "certificate installed") {
			t.Fatalf("the sidecar got a certificate:\n%s", s.output())
		}
		s.stop(t)
	})

	t.Run("the same token gets a chain to the operator's root", func(t *testing.T) {
		s := startProxy(t, b.Proxy, cp.grpc, rootFile, "workshop/legacy", "legacy-sa", tok, "--cert-ttl", "48h", "--key-type", "rsa-2048")
		var chainErr error
		meshtest.Eventually(t, 40*time.Second, "the sidecar's certificate", func() error {
			if s.exited() {
				t.Fatalf("the sidecar exited:\n%s\ncontrol plane:\n%s", s.output(), cp.output())
			}
			_, chainErr = s.chain()
			return chainErr
		})
		chain, err := s.chain()
		if err != nil {
			t.Fatal(err)
		}
		leaf := chain[0]
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/workshop/sa/legacy-sa" {
			t.Errorf("URI SANs = %v", leaf.URIs)
		}
		if k, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
			t.Errorf("leaf key is %T, want RSA 2048", leaf.PublicKey)
		}
		if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 48*time.Hour || got > 48*time.Hour+2*time.Minute {
			t.Errorf("lifetime %s, want 48h (plus the backdate)", got)
		}
		ca := parsePEM(t, mustRead(t, filepath.Join(cacerts, "ca-cert.pem")))
		if !chain[1].Equal(ca[0]) {
			t.Errorf("the chain's intermediate is %q, not ca-cert.pem", chain[1].Subject)
		}
		out, err := opensslVerify(t, t.TempDir(), rootFile, chain)
		if err != nil || !strings.Contains(out, "leaf.pem: OK") {
			t.Fatalf("openssl verify -CAfile %s: %v\n%s", rootFile, err, out)
		}
	})
}

// Without a plug-in CA in --cacerts (the installed Deployment's optional
// cacerts Secret not created), --cacerts-optional falls back to the
// self-signed root in the state directory and says so; without the flag
// the empty directory is an error naming it.
func TestOptionalCACertsAbsent(t *testing.T) {
	t.Parallel()
	b := meshtest.Build(t)
	config := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	empty := t.TempDir()
	out, err := exec.Command(b.Palisade, "control-plane", "--config", config, "--state", t.TempDir(), "--listen", meshtest.HeldAddr(t), "--admin", meshtest.HeldAddr(t), "--cacerts", empty).CombinedOutput()
	if err == nil || !strings.Contains(string(out), empty) {
		t.Fatalf("--cacerts on an empty directory: err %v, want an error naming %s:\n%s", err, empty, out)
	}
	cp := startControlPlane(t, b, config, "--cacerts", empty, "--cacerts-optional")
	for _, want := range []string{"no plug-in CA in --cacerts", "made a self-signed root"} {
		if !strings.Contains(cp.output(), want) {
			t.Errorf("control plane log lacks %q:\n%s", want, cp.output())
		}
	}
	if _, err := os.Stat(filepath.Join(cp.state, "ca")); err != nil {
		t.Errorf("no CA in the state directory: %v", err)
	}
}
