package identity_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/internal/localmesh"
	"palisade.dev/palisade/test/e2e/meshtest"
)

// sidecar is a palisade-proxy the test started by hand, as an operator
// joins a workload to a running mesh.
type sidecar struct {
	name, admin, log string
	cmd              *exec.Cmd
	done             chan struct{}
}

func joinToken(t *testing.T, m *meshtest.Mesh, ns, sa string) string {
	t.Helper()
	out, err := exec.Command(m.Bins.Palisade, "join-token", "--state", m.State, "--namespace", ns, "--service-account", sa).Output()
	if err != nil {
		t.Fatalf("palisade join-token --namespace %s --service-account %s: %v", ns, sa, err)
	}
	tok := strings.TrimSpace(string(out))
	if !strings.HasPrefix(tok, "palisade-join.") {
		t.Fatalf("palisade join-token printed %q", tok)
	}
	return tok
}

// startSidecar runs palisade-proxy for workload ns/name asking for service
// account sa, proving itself with token, against m's control plane.
func startSidecar(t *testing.T, m *meshtest.Mesh, workload, sa, token string) *sidecar {
	t.Helper()
	var st localmesh.State
	if err := json.Unmarshal(mustRead(t, filepath.Join(m.State, localmesh.StateFile)), &st); err != nil {
		t.Fatal(err)
	}
	return startProxy(t, m.Bins.Proxy, st.GRPCAddress, filepath.Join(m.State, "root-cert.pem"), workload, sa, token)
}

// startProxy runs palisade-proxy (binary proxyBin) for workload ns/name as
// service account sa against the control plane at addr, trusting the roots
// of bundle, proving itself with token; extra flags follow.
func startProxy(t *testing.T, proxyBin, addr, bundle, workload, sa, token string, extra ...string) *sidecar {
	t.Helper()
	s := &sidecar{name: workload, admin: meshtest.HeldAddr(t), log: filepath.Join(t.TempDir(), "proxy.log"), done: make(chan struct{})}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--workload", workload, "--service-account", sa,
		"--control-plane", addr, "--trust-domain", "cluster.local", "--bundle", bundle,
		"--admin", s.admin, "--http-proxy", meshtest.HeldAddr(t), "--log-format", "text"}, append(meshtest.AllowRoot(), extra...)...)
	s.cmd = exec.Command(proxyBin, args...)
	s.cmd.Env = append(os.Environ(), "PALISADE_JOIN_TOKEN="+token)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }() //nolint:errcheck
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop ends the sidecar (SIGTERM, then SIGKILL after 5s) if it still runs.
func (s *sidecar) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Errorf("sidecar %s did not stop within 5s of SIGTERM", s.name)
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
}

func (s *sidecar) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// chain is the certificate chain the sidecar's admin serves on /certs.
func (s *sidecar) chain() ([]*x509.Certificate, error) {
	resp, err := http.Get("http://" + s.admin + "/certs")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/certs: %s", resp.Status)
	}
	var c struct {
		ChainPEM string `json:"chainPEM"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	rest := []byte(c.ChainPEM)
	for {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("/certs: %d certificates", len(out))
	}
	return out, nil
}

func (s *sidecar) output() string { return string(mustReadQuiet(s.log)) }

func mustReadQuiet(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// refused waits for the sidecar to give up (it waits up to 30s for a first
// certificate) and checks it never held one.
func (s *sidecar) refused(t *testing.T, wantInLog ...string) {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		// While it runs it must not serve a certificate.
		if resp, err := http.Get("http://" + s.admin + "/certs"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("sidecar %s holds a certificate:\n%s", s.name, s.output())
			}
		}
		select {
		case <-s.done:
			out := s.output()
			if s.cmd.ProcessState.Success() {
				t.Errorf("sidecar %s exited with success; want a failure:\n%s", s.name, out)
			}
			for _, w := range append(wantInLog, "no workload certificate") {
				if !strings.Contains(out, w) {
					t.Errorf("sidecar %s output lacks %q:\n%s", s.name, w, out)
				}
			}
			if strings.Contains(out, "certificate installed") {
				t.Errorf("sidecar %s installed a certificate:\n%s", s.name, out)
			}
			return
		case <-deadline:
			t.Fatalf("sidecar %s still running after 90s without a certificate; want it to give up:\n%s", s.name, s.output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// A join token proves one identity, once: a sidecar that asks for another
// service account than its token was minted for gets no certificate, nor
// does a second sidecar presenting a token already spent.
func TestJoinTokenBindsOneIdentityOnce(t *testing.T) {
	t.Parallel()
	m := upWorkshop(t)

	t.Run("another service account", func(t *testing.T) {
		t.Parallel()
		tok := joinToken(t, m, "workshop", "catalogdetail-sa")
		s := startSidecar(t, m, "workshop/impostor", "frontend-sa", tok)
		s.refused(t,
			"CA issued spiffe://cluster.local/ns/workshop/sa/catalogdetail-sa, want spiffe://cluster.local/ns/workshop/sa/frontend-sa")
		// The CA issues only what the token proves, and says what was asked.
		if out := m.Output(); !strings.Contains(out, "CSR asked for another identity") {
			t.Errorf("the control plane did not log the CSR asking for another identity:\n%s", out)
		}
		// It never joined the mesh as anyone.
		for _, p := range m.Status() {
			if p.Name == "impostor" {
				t.Errorf("the refused sidecar shows in palisade status: %+v", p)
			}
		}
		if _, err := m.Palisade("proxy-config", "secret", "workshop/impostor", "--state", m.State); err == nil {
			t.Error("proxy-config secret workshop/impostor succeeded")
		}
	})

	t.Run("token used twice", func(t *testing.T) {
		t.Parallel()
		tok := joinToken(t, m, "workshop", "reviews-sa")
		first := startSidecar(t, m, "workshop/reviews-a", "reviews-sa", tok)
		meshtest.Eventually(t, 40*time.Second, "the first sidecar's certificate", func() error {
			if first.exited() {
				t.Fatalf("the first sidecar exited:\n%s", first.output())
			}
			chain, err := first.chain()
			if err != nil {
				return err
			}
			if len(chain[0].URIs) != 1 {
				t.Fatalf("the first sidecar's certificate has URI SANs %v", chain[0].URIs)
			}
			if got := chain[0].URIs[0].String(); got != "spiffe://cluster.local/ns/workshop/sa/reviews-sa" {
				t.Fatalf("the first sidecar holds %s", got)
			}
			return nil
		})
		second := startSidecar(t, m, "workshop/reviews-b", "reviews-sa", tok)
		second.refused(t, "join token already used")
	})
}
