// Package identity_test checks, with the real binaries and openssl, what
// the mesh's CA issues: each workload's SPIFFE certificate, its turnover
// under live traffic, a root rotation with no failed request, that a
// workload cannot obtain an identity it was not given, and a plug-in CA
// made with openssl as Istio's tools/certs makes it.
package identity_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/localmesh"
	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

// serviceAccounts are the workshop's workloads and their service accounts.
var serviceAccounts = map[string]string{
	"frontend":       "frontend-sa",
	"productcatalog": "productcatalog-sa",
	"catalogdetail":  "catalogdetail-sa",
}

const secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// upWorkshop runs palisade up on a copy of the sample, its ingress gateway
// moved to a free port so that other meshes of the test run do not clash.
func upWorkshop(t *testing.T, flags ...string) *meshtest.Mesh {
	t.Helper()
	b := meshtest.Build(t)
	flags = append([]string{"--gateway-port-offset", strconv.Itoa(meshtest.GatewayOffset(t, 80))}, flags...)
	return meshtest.Up(t, b, meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop")), flags...)
}

// secret is `palisade proxy-config secret` of one sidecar.
type secret struct {
	Serial    string    `json:"serialNumber"`
	URISANs   []string  `json:"uriSANs"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	RenewAt   time.Time `json:"renewAt"`
}

func secretJSON(t *testing.T, m *meshtest.Mesh, id string) (secret, error) {
	t.Helper()
	out, err := m.Palisade("proxy-config", "secret", id, "-o", "json", "--state", m.State)
	if err != nil {
		return secret{}, fmt.Errorf("palisade proxy-config secret %s -o json: %v\n%s", id, err, out)
	}
	var s secret
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return secret{}, fmt.Errorf("proxy-config secret %s -o json: %v\n%s", id, err, out)
	}
	return s, nil
}

// chainPEM is `palisade proxy-config secret ID -o pem`: leaf,
// intermediate(s), root.
func chainPEM(t *testing.T, m *meshtest.Mesh, id string) []*x509.Certificate {
	t.Helper()
	out, err := m.Palisade("proxy-config", "secret", id, "-o", "pem", "--state", m.State)
	if err != nil {
		t.Fatalf("palisade proxy-config secret %s -o pem: %v\n%s", id, err, out)
	}
	certs := parsePEM(t, []byte(out))
	if len(certs) < 2 {
		t.Fatalf("proxy-config secret %s -o pem: %d certificates, want leaf and issuers:\n%s", id, len(certs), out)
	}
	return certs
}

func parsePEM(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			t.Fatalf("unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

func isRoot(c *x509.Certificate) bool { return c.IsCA && c.CheckSignatureFrom(c) == nil }

// opensslVerify runs `openssl verify -CAfile root -untrusted intermediates
// leaf` on a workload's chain (its root, if present, left out: the trust
// comes from rootFile alone).
func opensslVerify(t *testing.T, dir, rootFile string, chain []*x509.Certificate) (string, error) {
	t.Helper()
	openssl := peers.Command(t, "openssl")
	inter := chain[1:]
	if isRoot(inter[len(inter)-1]) {
		inter = inter[:len(inter)-1]
	}
	if len(inter) == 0 {
		t.Fatal("the chain has no intermediate")
	}
	leaf := writePEM(t, filepath.Join(dir, "leaf.pem"), chain[0])
	untrusted := writePEM(t, filepath.Join(dir, "intermediates.pem"), inter...)
	out, err := exec.Command(openssl, "verify", "-CAfile", rootFile, "-untrusted", untrusted, leaf).CombinedOutput()
	return string(out), err
}

// proxyIDs lists every connected sidecar and gateway (namespace/name).
func proxyIDs(t *testing.T, m *meshtest.Mesh) []string {
	t.Helper()
	var out []string
	for _, w := range m.Status() {
		out = append(out, w.Namespace+"/"+w.Name)
	}
	for _, id := range []string{localmesh.GatewayNamespace + "/" + localmesh.GatewayName} {
		if !contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// bundleOf is the trust bundle a sidecar holds: the ROOTCA secret of its
// /config_dump, as fingerprints.
func bundleOf(t *testing.T, m *meshtest.Mesh, id string) ([]string, error) {
	t.Helper()
	ns, name, _ := strings.Cut(id, "/")
	resp, err := http.Get("http://" + m.Proxy(ns, name).Admin + "/config_dump")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var dump struct {
		Resources map[string]map[string]struct {
			ValidationContext struct {
				TrustedCA struct {
					InlineBytes string `json:"inlineBytes"`
				} `json:"trustedCa"`
			} `json:"validationContext"`
		} `json:"resources"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &dump); err != nil {
		return nil, fmt.Errorf("%s /config_dump: %v", id, err)
	}
	root, ok := dump.Resources[secretType]["ROOTCA"]
	if !ok {
		return nil, fmt.Errorf("%s /config_dump has no ROOTCA secret", id)
	}
	raw, err := base64.StdEncoding.DecodeString(root.ValidationContext.TrustedCA.InlineBytes)
	if err != nil {
		return nil, fmt.Errorf("%s ROOTCA: %v", id, err)
	}
	var fps []string
	for _, c := range parsePEM(t, raw) {
		fps = append(fps, fingerprint(c))
	}
	return fps, nil
}

// caStatus is the running CA as the admin API shows it (/api/ca).
type caStatus struct {
	BundleSize int `json:"bundleSize"`
	Roots      []struct {
		ID    int    `json:"id"`
		State string `json:"state"`
		Root  struct {
			SHA256 string `json:"sha256Fingerprint"`
		} `json:"root"`
		LastIssuedExpiry time.Time `json:"lastIssuedExpiry"`
	} `json:"roots"`
}

func apiCA(t *testing.T, m *meshtest.Mesh) caStatus {
	t.Helper()
	resp, err := http.Get("http://" + m.Admin + "/api/ca")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s caStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Each workload's certificate, as the operator gets it from
// proxy-config secret, verifies with openssl against the mesh root through
// the intermediate, and is a SPIFFE workload certificate.
func TestWorkloadCertificatesVerifyWithOpenSSL(t *testing.T) {
	t.Parallel()
	openssl := peers.Command(t, "openssl")
	m := upWorkshop(t)
	rootFile := filepath.Join(m.State, "root-cert.pem")
	roots := parsePEM(t, mustRead(t, rootFile))
	if len(roots) != 1 || !isRoot(roots[0]) {
		t.Fatalf("%s: want one self-signed root, got %d certificates", rootFile, len(roots))
	}
	for name, sa := range serviceAccounts {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			chain := chainPEM(t, m, "workshop/"+name)
			if out, err := opensslVerify(t, dir, rootFile, chain); err != nil || !strings.Contains(out, "leaf.pem: OK") {
				t.Fatalf("openssl verify against the mesh root: %v\n%s", err, out)
			}
			// The root does not sign workloads itself: without the
			// intermediate openssl cannot build the chain.
			leaf := filepath.Join(dir, "leaf.pem")
			if out, err := exec.Command(openssl, "verify", "-CAfile", rootFile, leaf).CombinedOutput(); err == nil {
				t.Errorf("openssl verify without the intermediate succeeded:\n%s", out)
			}
			// Nor does a root of another mesh.
			other := t.TempDir()
			if out, err := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
				"-keyout", filepath.Join(other, "k.pem"), "-out", filepath.Join(other, "root.pem"), "-subj", "/CN=Other Root", "-days", "1").CombinedOutput(); err != nil {
				t.Fatalf("openssl req: %v\n%s", err, out)
			}
			if out, err := opensslVerify(t, dir, filepath.Join(other, "root.pem"), chain); err == nil {
				t.Errorf("openssl verify against another root succeeded:\n%s", out)
			}

			text, err := exec.Command(openssl, "x509", "-in", leaf, "-noout", "-text").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl x509 -text: %v\n%s", err, text)
			}
			want := []string{
				"URI:spiffe://cluster.local/ns/workshop/sa/" + sa,
				"CA:FALSE",
				"TLS Web Server Authentication",
				"TLS Web Client Authentication",
				"Issuer: O = cluster.local, CN = Palisade Intermediate CA 1",
			}
			for _, w := range want {
				if !strings.Contains(string(text), w) {
					t.Errorf("openssl x509 -text lacks %q:\n%s", w, text)
				}
			}
			// The workload's URI SAN is its only name.
			if n := strings.Count(string(text), "URI:"); n != 1 {
				t.Errorf("%d URI SANs, want 1:\n%s", n, text)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
