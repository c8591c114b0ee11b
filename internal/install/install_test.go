package install

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"palisade.dev/palisade/test/peers"
)

// testBundle is a throwaway CA certificate in PEM.
func testBundle(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func testValues(t *testing.T) Values {
	v := Defaults()
	v.Image, v.ProxyImage, v.CABundle = "registry.example/palisade:1.0", "registry.example/palisade-proxy:1.0", testBundle(t)
	return v
}

// TestCRDsCurrent: both copies of Istio's CRDs are the file of the
// istio.io/api version go.mod pins (run `go generate ./internal/install/`).
func TestCRDsCurrent(t *testing.T) {
	out, err := exec.Command("go", "mod", "download", "-json", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("go mod download istio.io/api: %v", err)
	}
	var mod struct{ Dir, Version string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v (%s)", err, out)
	}
	want, err := os.ReadFile(filepath.Join(mod.Dir, "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile("../../deploy/helm/palisade/crds/customresourcedefinitions.gen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(CRDs, want) || !bytes.Equal(chart, want) {
		t.Fatalf("the CRDs are not those of istio.io/api %s: run go generate ./internal/install/", mod.Version)
	}
}

func byKind(objs []*unstructured.Unstructured) map[string][]*unstructured.Unstructured {
	m := map[string][]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()] = append(m[o.GetKind()], o)
	}
	return m
}

func TestRender(t *testing.T) {
	v := testValues(t)
	data, err := Render(v)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	kinds := byKind(objs)
	var crds []string
	for _, c := range kinds["CustomResourceDefinition"] {
		crds = append(crds, c.GetName())
	}
	for _, want := range []string{"peerauthentications.security.istio.io", "requestauthentications.security.istio.io", "authorizationpolicies.security.istio.io",
		"destinationrules.networking.istio.io", "gateways.networking.istio.io", "virtualservices.networking.istio.io",
		"serviceentries.networking.istio.io", "workloadentries.networking.istio.io"} {
		if !strings.Contains(strings.Join(crds, " "), want) {
			t.Errorf("no CRD %s among %v", want, crds)
		}
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if len(kinds[k]) != 1 {
			t.Errorf("%d objects of kind %s, want 1", len(kinds[k]), k)
		}
	}
	mwc := kinds["MutatingWebhookConfiguration"][0]
	hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	if len(hooks) != 3 {
		t.Fatalf("mutating webhooks: %d", len(hooks))
	}
	cc := hooks[0].(map[string]any)["clientConfig"].(map[string]any)
	if cc["caBundle"] == "" || cc["service"].(map[string]any)["path"] != "/inject" {
		t.Errorf("clientConfig %v", cc)
	}
	img, _, _ := unstructured.NestedSlice(kinds["Deployment"][0].Object, "spec", "template", "spec", "containers")
	if img[0].(map[string]any)["image"] != v.Image {
		t.Errorf("deployment image %v", img[0].(map[string]any)["image"])
	}

	v.WebhookURL = "https://127.0.0.1:9443/"
	data, err = Render(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("url: https://127.0.0.1:9443/inject")) || !bytes.Contains(data, []byte("url: https://127.0.0.1:9443/validate")) {
		t.Error("webhook URL not used")
	}
}

func TestValuesValidate(t *testing.T) {
	v := Values{Namespace: "Istio_System", CABundle: []byte("not pem"), WebhookURL: "http://x", Revision: "a.b"}
	err := v.Validate()
	for _, want := range []string{`namespace "Istio_System"`, "image is required", "proxy image is required", "CA bundle", `webhook URL "http://x"`, `revision "a.b"`, "replicas 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
}

// TestHelmTemplateEqualsInstall: `helm template --include-crds` of the
// chart gives the same objects, in the same order, as `palisade install`
// with the same values.
func TestHelmTemplateEqualsInstall(t *testing.T) {
	helm := peers.Binary(t, "PALISADE_HELM", "helm", "helm")
	tests := []struct {
		name string
		edit func(*Values)
	}{
		{name: "defaults", edit: func(*Values) {}},
		{name: "own namespace URL and revision", edit: func(v *Values) {
			v.Namespace, v.WebhookURL, v.Revision, v.Replicas = "mesh-system", "https://127.0.0.1:9443", "canary", 2
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := testValues(t)
			tc.edit(&v)
			data, err := Render(v)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			bundle := filepath.Join(t.TempDir(), "roots.pem")
			if err := os.WriteFile(bundle, v.CABundle, 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"template", "palisade", "../../deploy/helm/palisade", "--include-crds",
				"--set", "namespace=" + v.Namespace, "--set", "image=" + v.Image, "--set", "proxyImage=" + v.ProxyImage,
				"--set-file", "caBundle=" + bundle, "--set", "revision=" + v.Revision, "--set", "replicas=" + strings.TrimSpace(jsonOf(v.Replicas))}
			if v.WebhookURL != "" {
				args = append(args, "--set", "webhookURL="+v.WebhookURL)
			}
			cmd := exec.Command(helm, args...)
			cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, stderr.String())
			}
			got, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("helm template: %d objects, palisade install: %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i].Object, want[i].Object) {
					g, _ := json.MarshalIndent(got[i].Object, "", " ")
					w, _ := json.MarshalIndent(want[i].Object, "", " ")
					t.Errorf("object %d (%s %s) differs:\nhelm template:\n%s\npalisade install:\n%s", i, want[i].GetKind(), want[i].GetName(), g, w)
				}
			}
		})
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
