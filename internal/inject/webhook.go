package inject

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/internal/config"
)

// Paths the webhooks are served on, as the webhook configurations that
// `palisade install` writes name them.
const (
	InjectPath   = "/inject"
	ValidatePath = "/validate"
)

// maxReview bounds an AdmissionReview body; the API server's own request
// limit is 3 MiB.
const maxReview = 8 << 20

// SnapshotFunc returns the config currently in force (the control
// plane's), so that the validating webhook can check an object against
// the rest; nil means each object is checked alone.
type SnapshotFunc func() *config.Snapshot

// Webhook serves the mutating (sidecar injection) and validating (Istio
// kinds) admission webhooks. Mount Handler on an HTTPS server whose
// certificate the webhook configurations' caBundle verifies.
type Webhook struct {
	cfg      Config
	snapshot SnapshotFunc
	log      *slog.Logger
}

// New checks cfg and returns the webhooks. snapshot may be nil.
func New(cfg Config, snapshot SnapshotFunc, log *slog.Logger) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Webhook{cfg: cfg, snapshot: snapshot, log: log}, nil
}

// Handler serves POST /inject and POST /validate.
func (w *Webhook) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+InjectPath, func(rw http.ResponseWriter, r *http.Request) { w.serve(rw, r, w.mutate) })
	mux.HandleFunc("POST "+ValidatePath, func(rw http.ResponseWriter, r *http.Request) { w.serve(rw, r, w.validate) })
	return mux
}

// serve decodes an AdmissionReview, answers it with review, and writes
// the response with the request's uid. A body that is not an
// AdmissionReview gets 400.
func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request, review func(*admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReview+1))
	if err != nil || len(body) > maxReview {
		http.Error(rw, "inject: cannot read the AdmissionReview", http.StatusBadRequest)
		return
	}
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
		http.Error(rw, "inject: the body is not an admission.k8s.io/v1 AdmissionReview with a request", http.StatusBadRequest)
		return
	}
	resp := review(in.Request)
	resp.UID = in.Request.UID
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	rw.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(rw).Encode(&out); err != nil {
		w.log.Warn("admission: write response", "err", err)
	}
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}}
}

// mutate injects the sidecar into a pod being created. A pod it must skip
// is allowed unchanged; a pod whose annotations are wrong is refused with
// the annotation named, so that no half-injected pod runs.
func (w *Webhook) mutate(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, fmt.Sprintf("inject: decode pod: %v", err))
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if why := Skip(&pod); why != "" {
		w.log.Info("injection skipped", "pod", podName(&pod), "reason", why)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	out, err := w.cfg.Inject(&pod, req.Namespace)
	if err != nil {
		w.log.Warn("injection refused", "pod", podName(&pod), "err", err)
		return deny(http.StatusUnprocessableEntity, err.Error())
	}
	patch, err := podPatch(&pod, out)
	if err != nil {
		return deny(http.StatusInternalServerError, err.Error())
	}
	w.log.Info("sidecar injected", "pod", podName(out), "interceptionMode", out.Annotations[AnnotationInterceptionMode])
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
}

// podPatch is the JSON patch (RFC 6902) from pod to out: each changed
// list or map is added whole, which replaces it when present.
func podPatch(pod, out *corev1.Pod) ([]byte, error) {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	ops := []op{
		{"add", "/metadata/labels", out.Labels},
		{"add", "/metadata/annotations", out.Annotations},
		{"add", "/spec/containers", out.Spec.Containers},
		{"add", "/spec/volumes", out.Spec.Volumes},
	}
	if len(out.Spec.InitContainers) != len(pod.Spec.InitContainers) {
		ops = append(ops, op{"add", "/spec/initContainers", out.Spec.InitContainers})
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("inject: patch: %w", err)
	}
	return b, nil
}
