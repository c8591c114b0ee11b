// Package externalca tests the control plane signing through an external
// CA: the real CFSSL remote signer, started by the test.
package externalca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

// pki writes a root and an intermediate for the external CA.
func pki(t *testing.T, dir string) (rootFile, interFile, interKeyFile string) {
	t.Helper()
	mk := func(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, serial int64) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{"external"}, CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	root, rootKey := mk("external root", nil, nil, 1)
	inter, interKey := mk("external intermediate", root, rootKey, 2)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kb, err := ca.EncodeKeyPEM(interKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "inter-key.pem")
	if err := os.WriteFile(keyFile, kb, 0o600); err != nil {
		t.Fatal(err)
	}
	return write("root.pem", &pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
		write("inter.pem", &pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}), keyFile
}

func start(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s output:\n%s", name, b)
		}
	})
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	meshtest.Eventually(t, 30*time.Second, "GET "+url, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}

// A sidecar's certificate comes from the external CA: signed by CFSSL with
// its intermediate, chaining to the external root, with only the
// workload's SPIFFE ID.
func TestControlPlaneSignsThroughCFSSL(t *testing.T) {
	b := meshtest.Build(t)
	cfssl := peers.Binary(t, "PALISADE_CFSSL", "cfssl", "cfssl")
	dir := t.TempDir()
	rootFile, interFile, interKey := pki(t, dir)

	authKey := make([]byte, 16)
	_, _ = rand.Read(authKey)
	keyHex := hex.EncodeToString(authKey)
	cfg := fmt.Sprintf(`{"signing": {"default": {"expiry": "1h", "usages": ["signing", "key encipherment", "server auth", "client auth"], "auth_key": "mesh"}},
"auth_keys": {"mesh": {"type": "standard", "key": %q}}}`, keyHex)
	if err := os.WriteFile(filepath.Join(dir, "cfssl.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.key"), []byte(keyHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfsslAddr := peers.FreeAddr(t)
	host, port, _ := net.SplitHostPort(cfsslAddr)
	start(t, "cfssl", exec.Command(cfssl, "serve", "-address", host, "-port", port, "-ca", interFile, "-ca-key", interKey,
		"-config", filepath.Join(dir, "cfssl.json"), "-loglevel", "2"))
	waitHTTP(t, "http://"+cfsslAddr+"/api/v1/cfssl/health")

	conf := filepath.Join(dir, "mesh")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "workloads.yaml"), []byte(`apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: demo, labels: {app: web}}
spec:
  serviceAccount: web-sa
  command: web
  ports: [{name: http, number: 8080, protocol: HTTP}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	grpcAddr, adminAddr := peers.FreeAddr(t), peers.FreeAddr(t)
	start(t, "control-plane", exec.Command(b.Palisade, "control-plane", "--config", conf, "--state", state,
		"--listen", grpcAddr, "--admin", adminAddr,
		"--external-ca-cfssl", "http://"+cfsslAddr, "--external-ca-chain", interFile, "--external-ca-roots", rootFile,
		"--external-ca-auth-key-file", filepath.Join(dir, "auth.key")))
	waitHTTP(t, "http://"+adminAddr+"/healthz")

	tokenCmd := exec.Command(b.Palisade, "join-token", "--state", state, "--namespace", "demo", "--service-account", "web-sa")
	out, err := tokenCmd.CombinedOutput()
	if err != nil {
		t.Fatalf("join-token: %v\n%s", err, out)
	}
	token := strings.TrimSpace(string(out))

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	proxyAdmin := peers.FreeAddr(t)
	sidecar := exec.Command(b.Proxy, append([]string{"--workload", "demo/web", "--service-account", "web-sa",
		"--control-plane", grpcAddr, "--bundle", rootFile, "--admin", proxyAdmin, "--access-log", "",
		"--inbound", "port=8080,name=http,protocol=HTTP,listen=" + peers.FreeAddr(t) + ",app=" + strings.TrimPrefix(app.URL, "http://")},
		meshtest.AllowRoot()...)...)
	sidecar.Env = append(os.Environ(), "PALISADE_JOIN_TOKEN="+token)
	start(t, "sidecar", sidecar)
	waitHTTP(t, "http://"+proxyAdmin+"/ready")

	resp, err := http.Get("http://" + proxyAdmin + "/certs")
	if err != nil {
		t.Fatal(err)
	}
	var certs struct {
		ChainPEM string `json:"chainPEM"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&certs); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	blocks := strings.SplitAfter(certs.ChainPEM, "-----END CERTIFICATE-----\n")
	if len(blocks) < 2 {
		t.Fatalf("chain has %d certificates", len(blocks))
	}
	leafFile := filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(leafFile, []byte(blocks[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := exec.Command("openssl", "verify", "-CAfile", rootFile, "-untrusted", interFile, leafFile).CombinedOutput()
	if err != nil || !strings.Contains(string(v), "OK") {
		t.Fatalf("openssl verify against the external root: %v\n%s", err, v)
	}
	text, err := exec.Command("openssl", "x509", "-in", leafFile, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"URI:spiffe://cluster.local/ns/demo/sa/web-sa", "CA:FALSE", "Issuer: O = external, CN = external intermediate"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("leaf lacks %q:\n%s", want, text)
		}
	}
}
