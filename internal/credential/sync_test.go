package credential

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/test/kubeapi"
)

// pair makes a self-signed certificate and key for cn, PEM.
func pair(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn}}
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

func TestFromSecrets(t *testing.T) {
	cert, key := pair(t, "a.example.com")
	otherCert, _ := pair(t, "b.example.com")
	caPEM, _ := pair(t, "client CA")
	sec := func(name string, data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-ingress", Name: name}, Data: data}
	}
	tests := []struct {
		name     string
		main, ca *corev1.Secret
		wantOK   bool
		wantCA   []byte
		wantErr  bool
	}{
		{name: "absent"},
		{name: "kubernetes.io/tls", main: sec("web", map[string][]byte{"tls.crt": cert, "tls.key": key}), wantOK: true},
		{name: "with ca.crt", main: sec("web", map[string][]byte{"tls.crt": cert, "tls.key": key, "ca.crt": caPEM}), wantOK: true, wantCA: caPEM},
		{name: "generic keys", main: sec("web", map[string][]byte{"cert": cert, "key": key, "cacert": caPEM}), wantOK: true, wantCA: caPEM},
		{name: "-cacert Secret", main: sec("web", map[string][]byte{"tls.crt": cert, "tls.key": key}), ca: sec("web-cacert", map[string][]byte{"ca.crt": caPEM}), wantOK: true, wantCA: caPEM},
		{name: "not TLS", main: sec("web", map[string][]byte{"password": []byte("x")})},
		{name: "key without certificate", main: sec("web", map[string][]byte{"tls.key": key}), wantErr: true},
		{name: "mismatched pair", main: sec("web", map[string][]byte{"tls.crt": otherCert, "tls.key": key}), wantErr: true},
		{name: "bad ca.crt", main: sec("web", map[string][]byte{"tls.crt": cert, "tls.key": key, "ca.crt": []byte("junk")}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok, err := FromSecrets(tt.main, tt.ca)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if string(m.CA) != string(tt.wantCA) {
				t.Errorf("CA = %q, want %q", m.CA, tt.wantCA)
			}
		})
	}
}

// On a real API server: a Secret becomes files, a renewed Secret replaces
// them, a broken update leaves the last good ones, a deleted Secret
// removes them.
func TestSyncFollowsSecrets(t *testing.T) {
	c := kubeapi.Start(t)
	c.Namespace(t, "istio-ingress", nil)
	dir := t.TempDir()
	ctx := t.Context()
	s := &Sync{Client: c.Client, Namespace: "istio-ingress", Dir: dir, Names: []string{"web-credential"}, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	go func() {
		if err := s.Run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
	}()

	secrets := c.Client.CoreV1().Secrets("istio-ingress")
	cert1, key1 := pair(t, "v1.example.com")
	_, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-credential"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": cert1, "tls.key": key1}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A TLS Secret no credentialName names stays in the cluster.
	otherCert, otherKey := pair(t, "other.example.com")
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": otherCert, "tls.key": otherKey}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(dir, "web-credential", "tls.crt")
	waitFile(t, crt, cert1)
	if left, _ := filepath.Glob(filepath.Join(dir, "*other*")); len(left) != 0 {
		t.Errorf("a Secret not asked for was written: %v", left)
	}

	cert2, key2 := pair(t, "v2.example.com")
	update := func(data map[string][]byte) {
		t.Helper()
		sec, err := secrets.Get(ctx, "web-credential", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Data = data
		if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	update(map[string][]byte{"tls.crt": cert2, "tls.key": key2})
	waitFile(t, crt, cert2)
	if b, _ := os.ReadFile(filepath.Join(dir, "web-credential", "tls.key")); string(b) != string(key2) {
		t.Error("tls.key not renewed with tls.crt")
	}

	caPEM, _ := pair(t, "client CA")
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-credential-cacert"},
		Data: map[string][]byte{"ca.crt": caPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "web-credential", "ca.crt"), caPEM)

	// A key that does not match: refused, the last good pair stays.
	update(map[string][]byte{"tls.crt": cert1, "tls.key": key2})
	time.Sleep(time.Second)
	if b, _ := os.ReadFile(crt); string(b) != string(cert2) {
		t.Error("a broken Secret replaced the last good credential")
	}

	if err := secrets.Delete(ctx, "web-credential", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(crt)
		left, _ := filepath.Glob(filepath.Join(dir, ".web-credential.*"))
		if os.IsNotExist(err) && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("credential of a deleted Secret still there (stat: %v, versions %v)", err, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFile(t *testing.T, path string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && string(b) == string(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("%s: not the expected content after 10s (err %v)", path, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
