package mesh_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/test/e2e/meshtest"
)

const (
	meshPermissive = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: PERMISSIVE
`
	meshStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`
	namespaceStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: workshop-strict
  namespace: workshop
spec:
  mtls:
    mode: STRICT
`
	// Istio's example: STRICT for the workload, but its port left to the
	// app's own TLS (or none) with portLevelMtls DISABLE.
	catalogdetailPortDisable = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: catalogdetail-port
  namespace: workshop
spec:
  selector:
    matchLabels:
      app: catalogdetail
  mtls:
    mode: STRICT
  portLevelMtls:
    3000:
      mode: DISABLE
`
)

var workshopWorkloads = []string{"catalogdetail", "frontend", "productcatalog"}

// plainCurl is a client outside the mesh: the real curl, plaintext
// straight to the workload's sidecar.
func plainCurl(t *testing.T, m *meshtest.Mesh, name string) (string, int) {
	t.Helper()
	return curl(t, "http://"+m.Workload("workshop", name).InboundAddress+"/ping")
}

// wantReset asserts curl's connection is reset, as Envoy does for
// plaintext under STRICT: exit 56, "Recv failure: Connection reset by peer".
func wantReset(t *testing.T, m *meshtest.Mesh, name string) {
	t.Helper()
	out, code := plainCurl(t, m, name)
	if code != 56 || !strings.Contains(out, "reset") {
		t.Errorf("plaintext curl to %s: exit %d %q; want 56, connection reset", name, code, out)
	}
}

func wantThrough(t *testing.T, m *meshtest.Mesh, name string) {
	t.Helper()
	meshtest.Eventually(t, 10*time.Second, "plaintext curl to "+name, func() error {
		// -f: an HTTP error is a failure too; the app answered /ping.
		out, code := curl(t, "-f", "http://"+m.Workload("workshop", name).InboundAddress+"/ping")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})
}

// plaintextRefused dials the workload's sidecar in plaintext, as curl
// does, and reports whether the connection was reset instead of served.
func plaintextRefused(addr string) (bool, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE), nil
	}
	b := make([]byte, 12)
	n, err := io.ReadFull(c, b)
	if strings.HasPrefix(string(b[:n]), "HTTP/1.1 200") {
		return false, nil
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return true, nil
	}
	return false, fmt.Errorf("neither served nor reset: %q %v", b[:n], err)
}

func describe(t *testing.T, m *meshtest.Mesh, name string) controlplane.Description {
	t.Helper()
	out, err := m.Palisade("describe", "workload", "workshop/"+name, "--state", m.State, "-o", "json")
	if err != nil {
		t.Fatalf("palisade describe: %v\n%s", err, out)
	}
	var d controlplane.Description
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("palisade describe -o json: %v\n%s", err, out)
	}
	return d
}

// wantPortMode asserts what `palisade describe` says about the
// workload's first port, and that `palisade status` agrees.
func wantPortMode(t *testing.T, m *meshtest.Mesh, name, mode, setBy string, portLevel bool) {
	t.Helper()
	var last string
	meshtest.Eventually(t, 10*time.Second, "describe "+name, func() error {
		d := describe(t, m, name)
		if len(d.Ports) != 1 {
			return fmt.Errorf("ports %+v", d.Ports)
		}
		p := d.Ports[0]
		last = fmt.Sprintf("%+v", p)
		if p.Mode != mode || p.SetBy != setBy || p.PortLevel != portLevel {
			return fmt.Errorf("port %s; want mode %s set by %s (port level %v)", last, mode, setBy, portLevel)
		}
		return nil
	})
	out, err := m.Palisade("status", "--state", m.State, "-o", "json")
	if err != nil {
		t.Fatalf("palisade status: %v\n%s", err, out)
	}
	var st []controlplane.WorkloadStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("palisade status -o json: %v\n%s", err, out)
	}
	for _, w := range st {
		if w.Name == name && w.MTLSMode != mode {
			t.Errorf("palisade status shows %s in %s, describe shows %s", name, w.MTLSMode, last)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// PeerAuthentication as Istio's docs describe it, seen by a real curl
// outside the mesh and by the mesh's own clients.
func TestPeerAuthentication(t *testing.T) {
	needCurl(t)
	b := meshtest.Build(t)
	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	m := meshtest.Up(t, b, dir)
	meshOK := func(t *testing.T) {
		t.Helper()
		resp, err := m.Client("workshop", "frontend").Get("http://frontend:9000/")
		if err != nil {
			t.Fatalf("mesh request: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "ABC.com") {
			t.Fatalf("mesh request: %s\n%s", resp.Status, b)
		}
	}

	t.Run("strict-resets-every-port", func(t *testing.T) {
		for _, w := range m.Status() {
			if w.MTLSMode != "STRICT" {
				t.Errorf("status: %s/%s in %s", w.Namespace, w.Name, w.MTLSMode)
			}
		}
		for _, name := range workshopWorkloads {
			wantReset(t, m, name)
			wantPortMode(t, m, name, "STRICT", "istio-system/default", false)
		}
		meshOK(t)
	})

	t.Run("permissive-lets-plaintext-through", func(t *testing.T) {
		writeFile(t, dir, "peerauthentication.yaml", meshPermissive)
		for _, name := range workshopWorkloads {
			wantThrough(t, m, name)
			wantPortMode(t, m, name, "PERMISSIVE", "istio-system/default", false)
		}
		meshOK(t)
	})

	t.Run("namespace-over-mesh", func(t *testing.T) {
		// The namespace's policy wins over the mesh's (PERMISSIVE).
		writeFile(t, dir, "pa-namespace.yaml", namespaceStrict)
		for _, name := range workshopWorkloads {
			wantPortMode(t, m, name, "STRICT", "workshop/workshop-strict", false)
			wantReset(t, m, name)
		}
		meshOK(t)
	})

	t.Run("port-level-disable", func(t *testing.T) {
		// The workload's own policy wins over the namespace's, and its
		// port-level mode over its workload-level one.
		writeFile(t, dir, "pa-catalogdetail.yaml", catalogdetailPortDisable)
		wantPortMode(t, m, "catalogdetail", "DISABLE", "workshop/catalogdetail-port", true)
		wantThrough(t, m, "catalogdetail")
		for _, name := range []string{"frontend", "productcatalog"} {
			wantPortMode(t, m, name, "STRICT", "workshop/workshop-strict", false)
			wantReset(t, m, name)
		}
		// Sidecars send plaintext to a port whose server does not
		// terminate mTLS (auto mTLS), so the chain still works.
		meshtest.Eventually(t, 10*time.Second, "mesh request with catalogdetail's port DISABLE", func() error {
			resp, err := m.Client("workshop", "frontend").Get("http://frontend:9000/")
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), "ABC.com") {
				return fmt.Errorf("%s: %s", resp.Status, b)
			}
			return nil
		})
	})

	t.Run("back-to-mesh-default", func(t *testing.T) {
		removeFile(t, dir, "pa-catalogdetail.yaml")
		removeFile(t, dir, "pa-namespace.yaml")
		for _, name := range workshopWorkloads {
			wantPortMode(t, m, name, "PERMISSIVE", "istio-system/default", false)
			wantThrough(t, m, name)
		}
	})
}
