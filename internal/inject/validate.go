package inject

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"

	"palisade.dev/palisade/internal/analyze"
	"palisade.dev/palisade/internal/config"
)

// admissionFile names the document in config's messages; its
// "admission:LINE: " prefix is cut, since the object came from the API
// server, not a file.
const admissionFile = "admission"

var locationPrefix = regexp.MustCompile(`^` + admissionFile + `:\d+: `)

// validate decodes and validates an Istio object being created or
// updated, as `palisade analyze` does for a file, and refuses it when
// there is an error: a decoding or validation error (PAL0001), or one the
// proxy's compilers would refuse (PAL0008). Other findings about the
// object come back as warnings, which kubectl prints.
func (w *Webhook) validate(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	errs, warnings := w.check(req.Object.Raw, req.Namespace, req.Name)
	if len(errs) > 0 {
		w.log.Info("admission refused", "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "errors", strings.Join(errs, "; "))
		resp := deny(http.StatusUnprocessableEntity, strings.Join(errs, "\n"))
		resp.Warnings = warnings
		return resp
	}
	return &admissionv1.AdmissionResponse{Allowed: true, Warnings: warnings}
}

// check validates one object as the API server sends it (JSON), in
// namespace ns when the object does not say, and returns its errors and
// warnings, each in analyze's words without a file and line.
func (w *Webhook) check(raw []byte, ns, name string) (errs, warnings []string) {
	obj := map[string]any{}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return []string{fmt.Sprintf("the object is not JSON: %v", err)}, nil
	}
	// The API server may not have written the namespace (or a generated
	// name) into the object yet; the request has them.
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if s, _ := meta["namespace"].(string); s == "" && ns != "" {
			meta["namespace"] = ns
		}
		if s, _ := meta["name"].(string); s == "" && name != "" {
			meta["name"] = name
		}
	}
	delete(obj, "status")
	data, _ := json.Marshal(obj)

	rs, err := config.Decode(admissionFile, data)
	for _, f := range analyze.FromError(err) {
		errs = append(errs, fileFree(f))
	}
	if len(rs) != 1 {
		if len(errs) == 0 {
			errs = append(errs, "the object is not one Istio resource Palisade reads")
		}
		return errs, nil
	}
	r := rs[0]
	snap := w.context(r)
	for _, f := range analyze.Run(snap) {
		if !about(f, r) {
			continue
		}
		switch {
		case f.Level == analyze.Error && (f.Code == analyze.CodeInvalid || f.Code == analyze.CodeProxyRefuses):
			errs = append(errs, fileFree(f))
		case w.snapshot != nil || f.Code == analyze.CodeLegacyKind:
			// Cross-resource findings mean something only against the
			// config in force.
			warnings = append(warnings, fileFree(f))
		}
	}
	return errs, warnings
}

// context is the snapshot to analyze r in: the config in force with r in
// place of its old version, or r alone.
func (w *Webhook) context(r *config.Resource) *config.Snapshot {
	snap := &config.Snapshot{Mesh: config.DefaultMesh(), Resources: []*config.Resource{r}}
	if w.snapshot == nil {
		return snap
	}
	cur := w.snapshot()
	if cur == nil {
		return snap
	}
	rs := make([]*config.Resource, 0, len(cur.Resources)+1)
	for _, x := range cur.Resources {
		if x.Key() != r.Key() {
			rs = append(rs, x)
		}
	}
	rs = append(rs, r)
	config.SortResources(rs)
	return &config.Snapshot{Version: cur.Version, Mesh: cur.Mesh, MeshFile: cur.MeshFile, Resources: rs}
}

func about(f analyze.Finding, r *config.Resource) bool {
	k := r.Key().String()
	for _, x := range f.Resources {
		if x == k {
			return true
		}
	}
	return false
}

// fileFree is the line `palisade analyze` prints for f, without the file
// and line: "error [PAL0001] (AuthorizationPolicy ns/name) AuthorizationPolicy
// ns/name: spec...: message".
func fileFree(f analyze.Finding) string {
	f.Message = locationPrefix.ReplaceAllString(f.Message, "")
	return f.String()
}
