package inject

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// FuzzAdmission feeds arbitrary objects to both webhooks, as an API
// server (or anything that reaches the port) could: they must answer,
// never panic, and an allowed pod's patch must be valid JSON.
func FuzzAdmission(f *testing.F) {
	pod, _ := json.Marshal(webPod())
	f.Add(pod)
	for _, doc := range []string{badPolicy, goodPolicy} {
		j, _ := yaml.YAMLToJSON([]byte(doc))
		f.Add(j)
	}
	f.Add([]byte(`{"metadata":{"annotations":{"traffic.sidecar.istio.io/includeInboundPorts":"*,80"}},"spec":{"containers":[{"name":"a","livenessProbe":{"httpGet":{"port":"missing"}}}]}}`))
	w, err := New(testConfig(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "shop",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}
		if resp := w.mutate(req); resp.Allowed && resp.Patch != nil && !json.Valid(resp.Patch) {
			t.Fatalf("invalid patch %s", resp.Patch)
		}
		req.Kind = metav1.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}
		if resp := w.validate(req); !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
			t.Fatal("refused without a message")
		}
	})
}
