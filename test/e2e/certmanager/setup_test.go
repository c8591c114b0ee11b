package certmanager

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/kubeapi"
	"palisade.dev/palisade/test/peers"
)

// denyPolicy is the approver policy of the test's cert-manager: the
// service account "denied" never gets a certificate.
const denyPolicy = `^spiffe://cluster\.local/ns/e2e/sa/denied$`

// env is a cluster with cert-manager's controllers, the root and
// istio-ca issuers, and a control plane signing through them.
type env struct {
	b        *meshtest.Bins
	cluster  *kubeapi.Cluster
	dir      string // scratch files
	logs     string
	rootFile string // the company root, PEM: what proxies trust
	cmBin    string
	cm       *proc
	cmRuns   int
	cp       *proc
	state    string
	grpc     string
	admin    string
}

func setup(t *testing.T, certDuration time.Duration) *env {
	t.Helper()
	b := meshtest.Build(t)
	cmBin := peers.Binary(t, "PALISADE_CERT_MANAGER", "certmanager", "cert-manager-controllers")
	peers.Command(t, "openssl")
	c := kubeapi.Start(t)
	e := &env{b: b, cluster: c, dir: t.TempDir(), cmBin: cmBin}
	e.logs = filepath.Join(e.dir, "logs")
	if err := os.MkdirAll(e.logs, 0o700); err != nil {
		t.Fatal(err)
	}
	c.Namespace(t, "istio-system", nil)
	c.Namespace(t, "cert-manager", nil)
	e.startCertManager(t)

	// The root's key lives in a Secret, as the CA Issuer needs it; it plays
	// the company CA (AWS Private CA in the workshop).
	rootPEM, keyPEM := makeRoot(t)
	e.rootFile = filepath.Join(e.dir, "root.pem")
	if err := os.WriteFile(e.rootFile, rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Namespace(t, "istio-ingress", nil)
	for _, ns := range []string{"istio-system", "istio-ingress"} {
		_, err := c.Client.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "root-ca", Namespace: ns},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{"tls.crt": rootPEM, "tls.key": keyPEM, "ca.crt": rootPEM},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	kubectl(t, c.Kubectl, "apply", "-f", filepath.Join(b.Root, "test", "e2e", "certmanager", "testdata", "issuers.yaml"))
	kubectl(t, c.Kubectl, "-n", "istio-system", "wait", "--for=condition=Ready", "--timeout=60s", "certificate/istio-ca", "issuer/istio-ca")

	conf := meshtest.CopyDir(t, filepath.Join(b.Root, "test", "e2e", "certmanager", "testdata"))
	for _, f := range []string{"issuers.yaml", "edge-certificate.yaml"} {
		if err := os.Remove(filepath.Join(conf, f)); err != nil {
			t.Fatal(err)
		}
	}
	e.state = filepath.Join(e.dir, "state")
	e.grpc, e.admin = meshtest.HeldAddr(t), meshtest.HeldAddr(t)
	e.cp = startProc(t, "control plane", filepath.Join(e.logs, "control-plane.log"), nil, b.Palisade,
		"control-plane", "--config", conf, "--state", e.state, "--listen", e.grpc, "--admin", e.admin,
		"--ca", "cert-manager", "--cert-manager-kubeconfig", c.Kubeconfig, "--issuer-ref", "Issuer/istio-ca",
		"--certificate-namespace", "istio-system", "--max-client-certificate-duration", certDuration.String(),
		"--preserve-certificate-requests")
	waitHTTP(t, "control plane admin", "http://"+e.admin+"/api/status", e.cp)
	return e
}

// startCertManager starts (or restarts) cert-manager's controllers.
// t must be the test that owns e: the controllers run until it ends.
func (e *env) startCertManager(t *testing.T) {
	t.Helper()
	e.cmRuns++
	e.cm = startProc(t, "cert-manager", filepath.Join(e.logs, fmt.Sprintf("cert-manager.%d.log", e.cmRuns)), nil, e.cmBin,
		"--kubeconfig", e.cluster.Kubeconfig, "--crds", filepath.Join(filepath.Dir(e.cmBin), "crds"),
		"--deny-uri", denyPolicy)
	meshtest.Eventually(t, 60*time.Second, "cert-manager controllers running", func() error {
		if e.cm.exited() {
			t.Fatalf("cert-manager exited: %v\n%s", e.cm.cmd.ProcessState, e.cm.tail())
		}
		if !strings.Contains(e.cm.output(), "cert-manager-controllers: running") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

func makeRoot(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"Example Corp"}, CommonName: "Example Corp Root CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := ca.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kb
}

// workload is a sidecar and its app, started by the test.
type workload struct {
	name, sa            string
	inbound, app, admin string
	proxy               string // the sidecar's HTTP proxy listener
	sidecar, appP       *proc
}

// startWorkload starts a sidecar with a join token; the app starts once
// the sidecar is ready, unless wantReady is false.
func (e *env) startWorkload(t *testing.T, name, sa string, certTTL time.Duration, wantReady bool) *workload {
	t.Helper()
	w := &workload{name: name, sa: sa, inbound: meshtest.HeldAddr(t), app: meshtest.HeldAddr(t), admin: meshtest.HeldAddr(t), proxy: meshtest.HeldAddr(t)}
	tok, err := exec.Command(e.b.Palisade, "join-token", "--state", e.state, "--namespace", "e2e", "--service-account", sa).CombinedOutput()
	if err != nil {
		t.Fatalf("palisade join-token: %v\n%s", err, tok)
	}
	args := []string{"--workload", "e2e/" + name, "--service-account", sa, "--label", "app=" + name,
		"--control-plane", e.grpc, "--bundle", e.rootFile, "--cert-ttl", certTTL.String(),
		"--inbound", fmt.Sprintf("port=8080,name=http,protocol=HTTP,listen=%s,app=%s", w.inbound, w.app),
		"--http-proxy", w.proxy, "--admin", w.admin, "--access-log", ""}
	w.sidecar = startProc(t, name+" sidecar", filepath.Join(e.logs, name+".proxy.log"),
		[]string{"PALISADE_JOIN_TOKEN=" + strings.TrimSpace(string(tok))}, e.b.Proxy, append(args, meshtest.AllowRoot()...)...)
	if !wantReady {
		return w
	}
	waitHTTP(t, name+" sidecar ready", "http://"+w.admin+"/ready", w.sidecar)
	meshapp := e.b.BuildMain(t, "./test/e2e/mesh/meshapp")
	_, port, _ := net.SplitHostPort(w.app)
	w.appP = startProc(t, name, filepath.Join(e.logs, name+".log"),
		[]string{"PORT=" + port, "HTTP_PROXY=http://" + w.proxy, "NO_PROXY=127.0.0.1"}, meshapp, "http")
	waitHTTP(t, name+" app", "http://"+w.app+"/ping", w.appP)
	return w
}

// chain is the sidecar's certificate chain as its admin /certs shows it.
func (w *workload) chain(t *testing.T) []*x509.Certificate {
	t.Helper()
	resp, err := http.Get("http://" + w.admin + "/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var certs struct {
		ChainPEM string `json:"chainPEM"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &certs); err != nil {
		t.Fatalf("%s /certs: %v: %s", w.name, err, body)
	}
	var out []*x509.Certificate
	rest := []byte(certs.ChainPEM)
	for {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no certificate: %s", w.name, body)
	}
	return out
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
