package inject

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// badPolicy has a path that Istio's validation refuses.
const badPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: orders-read
  namespace: shop
spec:
  selector:
    matchLabels:
      app: orders
  rules:
  - to:
    - operation:
        methods: ["GET"]
        paths: ["/api/*/orders"]
`

const goodPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: orders-read
spec:
  rules:
  - to:
    - operation:
        methods: ["GET"]
        paths: ["/api/*"]
`

// badPolicyMessage is what the validating webhook answers for badPolicy:
// analyze's line for it, without file and line.
const badPolicyMessage = `Error [PAL0001] (AuthorizationPolicy shop/orders-read) AuthorizationPolicy shop/orders-read: spec.rules[0].to[0].operation.paths[0]: invalid path "/api/*/orders": '*' is allowed only at the start or the end`

func testWebhook(t *testing.T) *httptest.Server {
	t.Helper()
	w, err := New(testConfig(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewTLSServer(w.Handler())
	t.Cleanup(s.Close)
	return s
}

func review(t *testing.T, s *httptest.Server, path string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
	resp, err := s.Client().Post(s.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Response.UID != req.UID {
		t.Fatalf("bad review answer %+v", out)
	}
	return out.Response
}

func podRequest(t *testing.T, p *corev1.Pod) *admissionv1.AdmissionRequest {
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{UID: types.UID("uid-" + p.Name), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Namespace: p.Namespace, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}
}

// applyAdds applies a JSON patch of "add" operations on top-level paths
// of two levels (/metadata/labels, /spec/containers), the only kind the
// webhook writes; anything else fails the test.
func applyAdds(t *testing.T, raw, patch []byte) *corev1.Pod {
	t.Helper()
	var doc map[string]map[string]json.RawMessage
	var ops []struct {
		Op, Path string
		Value    json.RawMessage
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		parts := strings.Split(op.Path, "/")
		if op.Op != "add" || len(parts) != 3 || doc[parts[1]] == nil {
			t.Fatalf("unexpected patch operation %+v", op)
		}
		doc[parts[1]][parts[2]] = op.Value
	}
	b, _ := json.Marshal(doc)
	var p corev1.Pod
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestWebhookInject(t *testing.T) {
	s := testWebhook(t)
	req := podRequest(t, webPod())
	resp := review(t, s, InjectPath, req)
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v", resp)
	}
	p := applyAdds(t, req.Object.Raw, resp.Patch)
	if container(p, ProxyContainer, false) == nil || container(p, InitContainer, true) == nil || p.Spec.Containers[0].LivenessProbe.HTTPGet.Path != "/app-health/web/livez" {
		t.Fatalf("patched pod lacks the sidecar: %+v", p.Spec)
	}

	opt := webPod()
	opt.Annotations = map[string]string{AnnotationInject: "false"}
	if resp := review(t, s, InjectPath, podRequest(t, opt)); !resp.Allowed || resp.Patch != nil {
		t.Fatalf("opted-out pod: %+v", resp)
	}

	bad := webPod()
	bad.Annotations = map[string]string{AnnotationExcludeOutIPs: "everything"}
	resp = review(t, s, InjectPath, podRequest(t, bad))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "traffic.sidecar.istio.io/excludeOutboundIPRanges") {
		t.Fatalf("bad annotation: %+v", resp)
	}
}

func policyRequest(t *testing.T, doc, ns string) *admissionv1.AdmissionRequest {
	raw, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{UID: "uid-policy", Kind: metav1.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"},
		Namespace: ns, Name: "orders-read", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}
}

func TestWebhookValidate(t *testing.T) {
	s := testWebhook(t)
	resp := review(t, s, ValidatePath, policyRequest(t, badPolicy, "shop"))
	if resp.Allowed || resp.Result.Message != badPolicyMessage {
		t.Fatalf("bad policy:\n got %+v\nwant message %s", resp.Result, badPolicyMessage)
	}
	// No namespace in the object: the request's is used, as kubectl -n.
	if resp := review(t, s, ValidatePath, policyRequest(t, goodPolicy, "shop")); !resp.Allowed {
		t.Fatalf("good policy refused: %+v", resp.Result)
	}
	del := policyRequest(t, badPolicy, "shop")
	del.Operation = admissionv1.Delete
	if resp := review(t, s, ValidatePath, del); !resp.Allowed {
		t.Fatalf("delete refused: %+v", resp.Result)
	}
	unknown := policyRequest(t, strings.Replace(badPolicy, "  rules:", "  rulez:", 1), "shop")
	if resp := review(t, s, ValidatePath, unknown); resp.Allowed || !strings.Contains(resp.Result.Message, `unknown field "rulez"`) {
		t.Fatalf("unknown field: %+v", resp.Result)
	}
}

func TestWebhookBadBody(t *testing.T) {
	s := testWebhook(t)
	for _, body := range []string{"", "{}", "not json"} {
		resp, err := s.Client().Post(s.URL+InjectPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %q: status %d, want 400", body, resp.StatusCode)
		}
	}
}
