package kube

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/test/kubeapi"
)

func rootPEM(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestWebhookBundles: the named webhook configurations' caBundle follows
// the mesh roots through a rotation (old and new root, then the new one
// alone), one installed after start is patched, an edit back to another
// bundle is undone, and a configuration not named is left alone.
func TestWebhookBundles(t *testing.T) {
	c := kubeapi.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := c.Client.AdmissionregistrationV1()
	stale, oldRoot, newRoot := rootPEM(t, "stale"), rootPEM(t, "old"), rootPEM(t, "new")
	url := "https://127.0.0.1:1/inject"
	none := admissionregistrationv1.SideEffectClassNone
	ignore := admissionregistrationv1.Ignore
	mutating := func(name string) *admissionregistrationv1.MutatingWebhookConfiguration {
		var hooks []admissionregistrationv1.MutatingWebhook
		for _, h := range []string{"a.palisade.dev", "b.palisade.dev"} {
			hooks = append(hooks, admissionregistrationv1.MutatingWebhook{Name: h, ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: stale},
				SideEffects: &none, FailurePolicy: &ignore, AdmissionReviewVersions: []string{"v1"}})
		}
		return &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: hooks}
	}
	for _, name := range []string{"injector", "someone-elses"} {
		if _, err := api.MutatingWebhookConfigurations().Create(ctx, mutating(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	w := NewWebhookBundles(c.Client, []string{"injector"}, []string{"validator"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	both := append(append([]byte(nil), oldRoot...), newRoot...)
	w.SetBundle(both)
	go w.Run(ctx)

	bundles := func(mutating bool, name string) ([][]byte, error) {
		var out [][]byte
		if mutating {
			o, err := api.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			for _, h := range o.Webhooks {
				out = append(out, h.ClientConfig.CABundle)
			}
			return out, nil
		}
		o, err := api.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		for _, h := range o.Webhooks {
			out = append(out, h.ClientConfig.CABundle)
		}
		return out, nil
	}
	waitFor := func(mutating bool, name string, want []byte) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got, err := bundles(mutating, name)
			ok := err == nil && len(got) > 0
			for _, b := range got {
				ok = ok && bytes.Equal(b, want)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: caBundle never became the bundle wanted (err %v, %d webhooks)", name, err, len(got))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(true, "injector", both)

	// Installed after start.
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "validator"}, Webhooks: []admissionregistrationv1.ValidatingWebhook{{
		Name: "validation.palisade.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: stale},
		SideEffects: &none, FailurePolicy: &ignore, AdmissionReviewVersions: []string{"v1"}}}}
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, v, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(false, "validator", both)

	// The old root leaves the bundle.
	w.SetBundle(newRoot)
	waitFor(true, "injector", newRoot)
	waitFor(false, "validator", newRoot)

	// An apply that puts the stale bundle back is undone.
	o, err := api.MutatingWebhookConfigurations().Get(ctx, "injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.Webhooks[1].ClientConfig.CABundle = stale
	if _, err := api.MutatingWebhookConfigurations().Update(ctx, o, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(true, "injector", newRoot)

	got, err := bundles(true, "someone-elses")
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		if !bytes.Equal(b, stale) {
			t.Errorf("someone-elses webhook %d: caBundle changed to %d bytes", i, len(b))
		}
	}
}
