package certmanager

import (
	"bufio"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// The gateway serves the certificate a cert-manager Certificate keeps in
// the Secret its credentialName names; when cert-manager renews it, new
// connections get the new certificate without a restart, and a connection
// opened before goes on working.
func TestGatewayServesCertManagerSecret(t *testing.T) {
	e := setup(t, certTTL)
	c := e.cluster
	kubectl(t, c.Kubectl, "apply", "-f", filepath.Join(e.b.Root, "test", "e2e", "certmanager", "testdata", "edge-certificate.yaml"))
	kubectl(t, c.Kubectl, "-n", "istio-ingress", "wait", "--for=condition=Ready", "--timeout=60s", "certificate/web-credential")

	creds := filepath.Join(e.dir, "credentials")
	sync := startProc(t, "gateway-credentials", filepath.Join(e.logs, "gateway-credentials.log"), nil, e.b.Palisade,
		"gateway-credentials", "--kubeconfig", c.Kubeconfig, "--namespace", "istio-ingress", "--credential", "web-credential", "--dir", creds)
	meshtest.Eventually(t, 30*time.Second, "the credential written", func() error {
		if sync.exited() {
			t.Fatalf("gateway-credentials exited:\n%s", sync.tail())
		}
		_, err := os.Stat(filepath.Join(creds, "web-credential", "tls.crt"))
		return err
	})

	tok, err := exec.Command(e.b.Palisade, "join-token", "--state", e.state, "--namespace", "istio-ingress",
		"--service-account", "istio-ingressgateway-service-account").CombinedOutput()
	if err != nil {
		t.Fatalf("palisade join-token: %v\n%s", err, tok)
	}
	https, admin := meshtest.HeldAddr(t), meshtest.HeldAddr(t)
	args := []string{"gateway", "--workload", "istio-ingress/istio-ingressgateway",
		"--service-account", "istio-ingressgateway-service-account", "--label", "istio=ingressgateway",
		"--control-plane", e.grpc, "--bundle", e.rootFile, "--admin", admin, "--access-log", "",
		"--port", "443=" + https, "--credentials-dir", creds}
	gw := startProc(t, "gateway", filepath.Join(e.logs, "gateway.log"), []string{"PALISADE_JOIN_TOKEN=" + strings.TrimSpace(string(tok))},
		e.b.Proxy, append(args, meshtest.AllowRoot()...)...)
	waitHTTP(t, "gateway ready", "http://"+admin+"/ready", gw)

	rootPEM, err := os.ReadFile(e.rootFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	tcfg := &tls.Config{RootCAs: roots, ServerName: "web.example.com", NextProtos: []string{"http/1.1"}}
	// get sends one request on conn and returns the body.
	get := func(conn *tls.Conn) (string, error) {
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %s", resp.Status, b)
		}
		return string(b), nil
	}
	dial := func() (*tls.Conn, *x509.Certificate, error) {
		conn, err := tls.Dial("tcp", https, tcfg)
		if err != nil {
			return nil, nil, err
		}
		return conn, conn.ConnectionState().PeerCertificates[0], nil
	}

	var open *tls.Conn
	var first *x509.Certificate
	meshtest.Eventually(t, 30*time.Second, "HTTPS through the gateway", func() error {
		conn, cert, err := dial()
		if err != nil {
			return err
		}
		if body, err := get(conn); err != nil || !strings.Contains(body, "hello from the edge") {
			conn.Close()
			return fmt.Errorf("%q %v", body, err)
		}
		open, first = conn, cert
		return nil
	})
	defer open.Close()
	secret, err := c.Client.CoreV1().Secrets("istio-ingress").Get(t.Context(), "web-credential", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(secret.Data["tls.crt"]), "BEGIN CERTIFICATE") || first.NotAfter.Sub(first.NotBefore) > 3*time.Minute {
		t.Fatalf("the gateway does not serve the short-lived cert-manager certificate: %s – %s", first.NotBefore, first.NotAfter)
	}

	// cert-manager renews 80s before the end of the 2m certificate.
	var renewed *x509.Certificate
	meshtest.Eventually(t, 2*time.Minute, "a new connection sees the renewed certificate", func() error {
		if err := open.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		if _, err := get(open); err != nil {
			t.Fatalf("the connection opened before the renewal broke: %v", err)
		}
		conn, cert, err := dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		if cert.Equal(first) {
			return fmt.Errorf("still serial %x", first.SerialNumber)
		}
		if _, err := get(conn); err != nil {
			return err
		}
		renewed = cert
		return nil
	})
	if renewed.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.PublicKey) {
		t.Error("the renewed certificate has the old key (rotationPolicy: Always)")
	}
	if got := open.ConnectionState().PeerCertificates[0]; !got.Equal(first) {
		t.Error("the open connection's certificate changed")
	}
	if _, err := get(open); err != nil {
		t.Errorf("the connection opened before the renewal, after it: %v", err)
	}
	if !strings.Contains(sync.output(), "gateway credential updated") {
		t.Errorf("gateway-credentials does not log the update:\n%s", sync.tail())
	}
	t.Logf("served serial %x, then after renewal %x (not after %s)", first.SerialNumber, renewed.SerialNumber, renewed.NotAfter.Format(time.RFC3339))
}
