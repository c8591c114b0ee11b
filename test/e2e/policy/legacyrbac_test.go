package policy_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// The with-istio namespace of the legacy-rbac scenario: CouchDB (a stand-in
// echo server labelled app: couchdb), the test-app whose service account the
// ServiceRoleBinding names, and another workload with a different account.
var legacyWorkloads = `apiVersion: v1
kind: Namespace
metadata:
  name: with-istio
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: couchdb
  namespace: with-istio
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: test-app-test-app-chart
  namespace: with-istio
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: other-app
  namespace: with-istio
---
` + echoWorkload("with-istio", "couchdb", "couchdb", 5984, map[string]string{"app": "couchdb"}) +
	echoWorkload("with-istio", "test-app", "test-app-test-app-chart", 8080, map[string]string{"app": "test-app"}) +
	echoWorkload("with-istio", "other-app", "other-app", 8080, map[string]string{"app": "other-app"})

// legacyDestinationRule is the scenario file's DestinationRule, which
// convert leaves as it is (it is not a legacy kind).
func legacyDestinationRule(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		if strings.Contains(doc, "\nkind: \"DestinationRule\"") {
			return doc + "\n"
		}
	}
	t.Fatalf("%s has no DestinationRule", file)
	return ""
}

// The legacy-rbac scenario: palisade convert's output, run in the mesh,
// has the effect the v1alpha1 policies had.
func TestLegacyRBACConverted(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/policy/echoapp")
	legacy := filepath.Join("testdata", "legacy-policies.yaml")
	converted, err := exec.Command(b.Palisade, "convert", legacy).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("palisade convert %s: %v\n%s", legacy, err, stderr)
	}
	for _, want := range []string{"kind: PeerAuthentication", "mode: STRICT", "name: allow-nothing", "app: couchdb",
		"cluster.local/ns/with-istio/sa/test-app-test-app-chart"} {
		if !strings.Contains(string(converted), want) {
			t.Fatalf("convert output lacks %q:\n%s", want, converted)
		}
	}
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", "trustDomain: cluster.local\nrootNamespace: istio-system\n")
	writeFile(t, dir, "converted.yaml", string(converted))
	writeFile(t, dir, "destinationrule.yaml", legacyDestinationRule(t, legacy))
	writeFile(t, dir, "workloads.yaml", legacyWorkloads+userClientYAML)
	m := meshtest.Up(t, b, dir)
	couch := m.Workload("with-istio", "couchdb")
	if couch.MTLSMode != "STRICT" {
		t.Errorf("couchdb mTLS mode %q, want STRICT (from the converted Policy)", couch.MTLSMode)
	}

	const url = "http://couchdb.with-istio.svc.cluster.local:5984/_all_dbs"
	cases := []struct {
		name, from, fromSA, method string
		want                       int
	}{
		{"test-app GET", "test-app", "with-istio/test-app-test-app-chart", "GET", 200},
		{"test-app POST", "test-app", "with-istio/test-app-test-app-chart", "POST", 403},
		{"test-app DELETE", "test-app", "with-istio/test-app-test-app-chart", "DELETE", 403},
		{"other account GET", "other-app", "with-istio/other-app", "GET", 403},
		{"other namespace GET", "clients/user", "clients/user-sa", "GET", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns, name := "with-istio", tc.from
			if i := strings.IndexByte(tc.from, '/'); i >= 0 {
				ns, name = tc.from[:i], tc.from[i+1:]
			}
			r := do(t, m.Client(ns, name), tc.method, url, nil)
			if r.Status != tc.want {
				t.Errorf("%s %s from %s/%s: %d %s, want %d", tc.method, url, ns, name, r.Status, r.Body, tc.want)
			}
			if tc.want == 403 && r.Body != "RBAC: access denied" {
				t.Errorf("denied body %q, want RBAC: access denied", r.Body)
			}
			if tc.want == 200 {
				if h := echoed(t, r); !strings.Contains(h.Get("X-Forwarded-Client-Cert"), "URI=spiffe://cluster.local/ns/"+strings.Replace(tc.fromSA, "/", "/sa/", 1)) {
					t.Errorf("couchdb saw XFCC %q, want the test-app's identity", h.Get("X-Forwarded-Client-Cert"))
				}
			}
			l := findAccess(t, m, "with-istio", "couchdb", tc.method, "/_all_dbs", tc.want)
			if want := map[int]string{200: "ALLOW", 403: "DENY"}[tc.want]; l["authz_decision"] != want {
				t.Errorf("couchdb access log: decision %v, want %s: %v", l["authz_decision"], want, l)
			}

			// palisade authz check, on the running mesh's config, agrees.
			out, err := m.Palisade("authz", "check", "--state", m.State, "--to", "with-istio/couchdb",
				"--from", tc.fromSA, "--method", tc.method, "--path", "/_all_dbs")
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("palisade authz check: %v\n%s", err, out)
			}
			switch {
			case tc.want == 200 && (err != nil || !strings.HasPrefix(out, "ALLOW")):
				t.Errorf("authz check says %v:\n%s\nthe mesh allowed it", err, out)
			case tc.want == 403 && (err == nil || !strings.HasPrefix(out, "DENY (403 RBAC: access denied)")):
				t.Errorf("authz check says %v:\n%s\nthe mesh denied it with 403", err, out)
			}
		})
	}

	// Denials are counted as Istio counts them: istio_requests_total with
	// response_code 403, both principals and mutual_tls.
	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + m.Proxy("with-istio", "couchdb").Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		counts := map[string]float64{}
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, "istio_requests_total{") || !strings.Contains(line, `reporter="destination"`) ||
				!strings.Contains(line, `connection_security_policy="mutual_tls"`) ||
				!strings.Contains(line, `destination_principal="spiffe://cluster.local/ns/with-istio/sa/couchdb"`) {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			for _, code := range []string{"200", "403"} {
				if strings.Contains(line, `response_code="`+code+`"`) {
					counts[code] += v
				}
			}
		}
		if counts["200"] < 1 || counts["403"] < 4 {
			t.Errorf("istio_requests_total at couchdb: %v, want at least 1 with 200 and 4 with 403:\n%s", counts, body)
		}
	})

	// A client outside the mesh: STRICT resets the connection.
	t.Run("plaintext", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", couch.InboundAddress, 5*time.Second)
		if err != nil {
			t.Fatalf("dial couchdb's inbound port %s: %v", couch.InboundAddress, err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, werr := io.WriteString(c, "GET /_all_dbs HTTP/1.1\r\nHost: couchdb.with-istio.svc.cluster.local:5984\r\n\r\n")
		got, rerr := io.ReadAll(c)
		if len(got) > 0 {
			t.Fatalf("plaintext request got an answer: %q", got)
		}
		if !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(rerr, syscall.ECONNRESET) {
			t.Errorf("plaintext request: write %v, read %v; want the connection reset", werr, rerr)
		}
		out, err := m.Palisade("authz", "check", "--state", m.State, "--to", "with-istio/couchdb", "--path", "/_all_dbs")
		if err == nil || !strings.HasPrefix(out, "DENY (connection reset)") || !strings.Contains(out, "with-istio/default") {
			t.Errorf("authz check for a plaintext client says %v:\n%s\nthe mesh reset the connection (STRICT from with-istio/default)", err, out)
		}
	})
}
