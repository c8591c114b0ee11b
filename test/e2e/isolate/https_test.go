package isolate_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// appCert writes a CA and a server certificate for the secure service's
// names, the app's own, nothing to do with the mesh's.
func appCert(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "secure app CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject:   pkix.Name{CommonName: "secure.workshop.svc.cluster.local"},
		DNSNames:  []string{"secure", "secure.workshop", "secure.workshop.svc.cluster.local"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for p, b := range map[string][]byte{
		ca:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// TestIsolatedAppOwnTLS: an app serving HTTPS itself is reached through
// the mesh (its sidecar and the caller's, STRICT mTLS between them) with
// its own certificate end to end: the client verifies the app's
// certificate, not the mesh's.
func TestIsolatedAppOwnTLS(t *testing.T) {
	b, dir := setup(t)
	b.BuildMain(t, "./test/e2e/isolate/httpsapp")
	ca, cert, key := appCert(t, t.TempDir())
	secure := `apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata:
  name: secure
  namespace: workshop
  labels:
    app: secure
spec:
  serviceAccount: secure-sa
  ports:
  - name: https
    number: 8443
    protocol: HTTPS
  command: httpsapp
  env:
    TLS_CERT: ` + cert + `
    TLS_KEY: ` + key + `
`
	if err := os.WriteFile(filepath.Join(dir, "secure.yaml"), []byte(secure), 0o644); err != nil {
		t.Fatal(err)
	}
	sa := "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: secure-sa\n  namespace: workshop\n"
	if err := os.WriteFile(filepath.Join(dir, "secure-sa.yaml"), []byte(sa), 0o644); err != nil {
		t.Fatal(err)
	}
	m := meshtest.Up(t, b, dir, "--isolate")
	topo := topology(t, m.State)
	fe := workload(t, topo, "frontend")
	// The app has no readiness probe of its own (it serves only TLS), so
	// the first request waits for it to listen.
	var status, body string
	eventually(t, 15*time.Second, "frontend -> https://secure:8443/ answers over the app's own TLS", func() (bool, string) {
		status, body = curlArgs(t, fe.NS, 0, "-v", "--cacert", ca, "https://secure:8443/")
		return status == "200" && strings.Contains(body, "served over the app's own TLS to secure"), status + " " + body
	})
	if !strings.Contains(body, "CN=secure.workshop.svc.cluster.local") {
		t.Errorf("the client did not see the app's own certificate:\n%s", body)
	}
	// A TCP connection's record is written when it closes, just after
	// curl has its answer.
	eventually(t, 5*time.Second, "secure's sidecar logs an inbound mTLS connection from frontend", func() (bool, string) {
		entries := accessLog(t, m.State, "secure")
		for _, l := range entries {
			if l.Direction == "inbound" && l.MTLS && l.SourcePrincipal == frontendSA {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", entries)
	})
}
