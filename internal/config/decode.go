package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// kindInfo says how to decode one kind.
type kindInfo struct {
	namespaced bool
	// newSpec returns an empty spec value to decode into; nil for kinds
	// without a spec Palisade reads (Namespace, ServiceAccount).
	newSpec func() any
	// extra lists top-level keys besides apiVersion, kind, metadata, spec
	// and status that the kind may carry and Palisade ignores.
	extra []string
}

var (
	securityKinds = map[Kind]kindInfo{
		KindPeerAuthentication:    {namespaced: true, newSpec: func() any { return &securityv1beta1.PeerAuthentication{} }},
		KindRequestAuthentication: {namespaced: true, newSpec: func() any { return &securityv1beta1.RequestAuthentication{} }},
		KindAuthorizationPolicy:   {namespaced: true, newSpec: func() any { return &securityv1beta1.AuthorizationPolicy{} }},
	}
	networkingKinds = map[Kind]kindInfo{
		KindDestinationRule: {namespaced: true, newSpec: func() any { return &networkingv1alpha3.DestinationRule{} }},
		KindGateway:         {namespaced: true, newSpec: func() any { return &networkingv1alpha3.Gateway{} }},
		KindVirtualService:  {namespaced: true, newSpec: func() any { return &networkingv1alpha3.VirtualService{} }},
		KindServiceEntry:    {namespaced: true, newSpec: func() any { return &networkingv1alpha3.ServiceEntry{} }},
		KindWorkloadEntry:   {namespaced: true, newSpec: func() any { return &networkingv1alpha3.WorkloadEntry{} }},
	}
	// apiKinds maps apiVersion to the kinds it serves.
	apiKinds = map[string]map[Kind]kindInfo{
		"security.istio.io/v1":         securityKinds,
		"security.istio.io/v1beta1":    securityKinds,
		"networking.istio.io/v1":       networkingKinds,
		"networking.istio.io/v1beta1":  networkingKinds,
		"networking.istio.io/v1alpha3": networkingKinds,
		"v1": {
			KindNamespace:      {namespaced: false},
			KindServiceAccount: {namespaced: true, extra: []string{"secrets", "imagePullSecrets", "automountServiceAccountToken"}},
		},
		"authentication.istio.io/v1alpha1": {
			KindLegacyPolicy: {namespaced: true, newSpec: func() any { return &LegacyPolicy{} }},
		},
		"rbac.istio.io/v1alpha1": {
			KindServiceRole:        {namespaced: true, newSpec: func() any { return &ServiceRoleSpec{} }},
			KindServiceRoleBinding: {namespaced: true, newSpec: func() any { return &ServiceRoleBindingSpec{} }},
			KindClusterRbacConfig:  {namespaced: false, newSpec: func() any { return &ClusterRbacConfigSpec{} }},
		},
		"palisade.dev/v1alpha1": {
			KindWorkload: {namespaced: true, newSpec: func() any { return &WorkloadSpec{} }},
		},
	}
	// ignoredMeta are ObjectMeta fields the API server fills in; they may
	// appear in YAML exported with kubectl and carry nothing Palisade uses.
	ignoredMeta = map[string]bool{
		"uid": true, "resourceVersion": true, "generation": true, "creationTimestamp": true,
		"deletionTimestamp": true, "deletionGracePeriodSeconds": true, "managedFields": true,
		"ownerReferences": true, "finalizers": true, "generateName": true, "selfLink": true,
	}
)

// DefaultNamespace is where namespaced resources without metadata.namespace
// land, as with `kubectl apply`.
const DefaultNamespace = "default"

// Decode reads a multi-document YAML stream (documents separated by
// `---`) of Kubernetes-style objects and returns the resources in it,
// validated. Empty documents are skipped. Every problem is reported (joined
// with errors.Join) as a *FieldError reading
// `file:line: Kind namespace/name: field.path: message`; the resources that
// decoded cleanly are returned alongside the error.
//
// A panic while decoding (a bug) becomes an error for the file rather
// than taking down the daemon that reads it; the fuzz tests call decode
// directly, so that such a bug fails them.
func Decode(file string, data []byte) (rs []*Resource, err error) {
	defer func() {
		if p := recover(); p != nil {
			rs, err = nil, &FieldError{File: file, Line: 1, Message: fmt.Sprintf("cannot decode: %v", p)}
		}
	}()
	return decode(file, data)
}

// decode is Decode without the recover.
func decode(file string, data []byte) (rs []*Resource, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var errs []error
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if !errors.Is(err, io.EOF) {
				errs = append(errs, yamlError(file, data, err))
			}
			break
		}
		r, err := decodeDocument(file, &doc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r != nil {
			rs = append(rs, r)
		}
	}
	return rs, errors.Join(errs...)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a yaml.v3 syntax error into a FieldError with its line.
// yaml.v3 reports parser errors ("did not find expected ...") at the
// 0-based line of the construct being parsed, and a tab in indentation at
// the line before it; both are corrected here.
func yamlError(file string, data []byte, err error) error {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if strings.HasPrefix(msg, "did not find expected") {
			line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	lines := strings.Split(string(data), "\n")
	if strings.Contains(msg, "tab character") {
		for i := max(line, 1); i <= len(lines); i++ {
			indent := lines[i-1][:len(lines[i-1])-len(strings.TrimLeft(lines[i-1], " \t"))]
			if strings.Contains(indent, "\t") {
				line = i
				break
			}
		}
	}
	line = min(max(line, 1), len(lines))
	return &FieldError{File: file, Line: line, Message: "invalid YAML: " + msg}
}

// decodeDocument decodes one YAML document; nil, nil for an empty one.
func decodeDocument(file string, doc *yaml.Node) (*Resource, error) {
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	for top.Kind == yaml.AliasNode && top.Alias != nil {
		top = top.Alias
	}
	if top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null" {
		return nil, nil
	}
	r := &Resource{Source: Source{File: file, Line: top.Line}, lines: map[string]int{}}
	if top.Kind != yaml.MappingNode {
		return nil, &FieldError{File: file, Line: top.Line, Message: errNotMapping.Error()}
	}
	entries, err := (&jsonDoc{}).entries(top, "", 0)
	if err != nil {
		return nil, r.wrapPathError(err)
	}
	fields := map[string]mapEntry{}
	for _, e := range entries {
		fields[e.name] = e
		r.lines[e.name] = e.key.Line
	}
	kind, err := r.scalarField(fields, "kind")
	if err != nil {
		return nil, err
	}
	r.Kind = Kind(kind)
	apiVersion, err := r.scalarField(fields, "apiVersion")
	if err != nil {
		return nil, err
	}
	r.APIVersion = apiVersion
	if e, ok := fields["metadata"]; ok {
		if err := r.decodeMeta(e.val); err != nil {
			return nil, err
		}
	}
	kinds, ok := apiKinds[apiVersion]
	if !ok {
		return nil, r.fieldError("apiVersion", "unsupported apiVersion %q", apiVersion)
	}
	info, ok := kinds[r.Kind]
	if !ok {
		return nil, r.fieldError("kind", "unsupported kind %q for apiVersion %s", kind, apiVersion)
	}
	if _, ok := fields["metadata"]; !ok {
		return nil, r.fieldError("metadata", "metadata is required")
	}
	if info.namespaced && r.Meta.Namespace == "" {
		r.Meta.Namespace = DefaultNamespace
	}
	if !info.namespaced {
		r.Meta.Namespace = ""
	}
	allowed := map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "spec": true, "status": true}
	for _, x := range info.extra {
		allowed[x] = true
	}
	for _, e := range entries {
		if !allowed[e.name] {
			return nil, r.fieldError(e.name, "unknown field %q", e.name)
		}
	}
	if info.newSpec != nil {
		spec := info.newSpec()
		var specNode *yaml.Node
		if e, ok := fields["spec"]; ok {
			specNode = e.val
		}
		if err := r.decodeSpec(specNode, spec); err != nil {
			return nil, err
		}
		r.Spec = spec
	}
	if err := Validate(r); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Resource) scalarField(fields map[string]mapEntry, name string) (string, error) {
	e, ok := fields[name]
	if !ok {
		return "", r.fieldError(name, "%s is required", name)
	}
	v := e.val
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" || v.Value == "" {
		return "", r.fieldError(name, "%s must be a non-empty string", name)
	}
	return v.Value, nil
}

func (r *Resource) decodeMeta(n *yaml.Node) error {
	jd, err := toJSON(n, "metadata")
	if err != nil {
		return r.wrapPathError(err)
	}
	r.mergeLines(jd)
	if n.Kind == yaml.MappingNode {
		es, _ := jd.entries(n, "metadata", 0)
		for _, e := range es {
			if ignoredMeta[e.name] {
				continue
			}
			switch e.name {
			case "name", "namespace", "labels", "annotations":
			default:
				return r.fieldError("metadata."+e.name, "unknown field %q", e.name)
			}
		}
	}
	var m struct {
		Name        *string           `json:"name"`
		Namespace   *string           `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(jd.buf.Bytes(), &m); err != nil {
		return r.jsonError(jd, "metadata", err)
	}
	if m.Name != nil {
		r.Meta.Name = *m.Name
	}
	if m.Namespace != nil {
		r.Meta.Namespace = *m.Namespace
	}
	r.Meta.Labels, r.Meta.Annotations = m.Labels, m.Annotations
	return nil
}

// mergeLines adds jd's field lines to r's, keeping lines already known
// (the line of a key such as `spec:` wins over where its value starts).
func (r *Resource) mergeLines(jd *jsonDoc) {
	for p, l := range jd.lines {
		if _, ok := r.lines[p]; !ok {
			r.lines[p] = l
		}
	}
}

// decodeSpec decodes n (nil when the document has no spec) into spec:
// protojson for istio.io/api messages, a strict JSON decoder otherwise.
func (r *Resource) decodeSpec(n *yaml.Node, spec any) error {
	var jd *jsonDoc
	if n == nil {
		jd = &jsonDoc{lines: map[string]int{}}
		jd.newline("spec", r.Source.Line)
		jd.buf.WriteString("{}")
	} else {
		var err error
		if jd, err = toJSON(n, "spec"); err != nil {
			return r.wrapPathError(err)
		}
		r.mergeLines(jd)
	}
	if bytes.Equal(bytes.TrimSpace(jd.buf.Bytes()), []byte("null")) {
		jd.buf.Reset()
		jd.buf.WriteString("{}")
	}
	if m, ok := spec.(proto.Message); ok {
		if err := protojson.Unmarshal(jd.buf.Bytes(), m); err != nil {
			return r.protoError(jd, err)
		}
		return nil
	}
	if n != nil {
		if errs := unknownFields(n, reflect.TypeOf(spec), "spec"); len(errs) > 0 {
			out := make([]error, len(errs))
			for i, e := range errs {
				out[i] = r.wrapPathError(e)
			}
			return errors.Join(out...)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(jd.buf.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(spec); err != nil {
		return r.jsonError(jd, "spec", err)
	}
	return nil
}

var protoPosRE = regexp.MustCompile(`\(line (\d+):(\d+)\):?\s*(.*)$`)

// protoError maps a protojson error back to the field and YAML line.
func (r *Resource) protoError(jd *jsonDoc, err error) error {
	msg := err.Error()
	m := protoPosRE.FindStringSubmatch(msg)
	if m == nil {
		msg = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(msg, "proto:"), "\u00a0"))
		return r.fieldError("spec", "%s", msg)
	}
	line, _ := strconv.Atoi(m[1])
	ref, ok := jd.atLine(line)
	if !ok {
		return r.fieldError("spec", "%s", m[3])
	}
	fe := r.fieldError(ref.path, "%s", m[3])
	fe.Line = ref.line
	return fe
}

// jsonError maps an encoding/json error back to the field and YAML line.
func (r *Resource) jsonError(jd *jsonDoc, prefix string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		msg := fmt.Sprintf("cannot use %s as %s", te.Value, te.Type)
		if ref, ok := jd.atOffset(te.Offset); ok {
			fe := r.fieldError(ref.path, "%s", msg)
			fe.Line = ref.line
			return fe
		}
		path := prefix
		if te.Field != "" {
			path = prefix + "." + te.Field
		}
		return r.fieldError(path, "%s", msg)
	}
	return r.fieldError(prefix, "%s", strings.TrimPrefix(err.Error(), "json: "))
}

// wrapPathError turns a pathError into a FieldError of r.
func (r *Resource) wrapPathError(err error) error {
	var pe *pathError
	if errors.As(err, &pe) {
		fe := r.fieldError(pe.path, "%s", pe.msg)
		if pe.line > 0 {
			fe.Line = pe.line
		}
		return fe
	}
	return r.fieldError("", "%v", err)
}

// unknownFields reports keys of n that t (a struct, or pointer, slice or
// map of structs) has no exactly-named json field for. encoding/json
// matches names case-insensitively; Istio's decoders do not.
func unknownFields(n *yaml.Node, t reflect.Type, path string) []error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		es, err := (&jsonDoc{}).entries(n, path, 0)
		if err != nil {
			return []error{err}
		}
		for _, e := range es {
			f, ok := jsonField(t, e.name)
			p := joinPath(path, e.name)
			if !ok {
				errs = append(errs, &pathError{path: p, line: e.key.Line, msg: fmt.Sprintf("unknown field %q", e.name)})
				continue
			}
			errs = append(errs, unknownFields(e.val, f.Type, p)...)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			errs = append(errs, unknownFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, unknownFields(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value))...)
		}
	}
	return errs
}

func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
