package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// FieldManager owns the fields `palisade install --apply` sets.
const FieldManager = "palisade"

// resources maps the kinds Render writes to their API resources.
var resources = map[string]struct {
	resource   string
	namespaced bool
}{
	"CustomResourceDefinition":       {"customresourcedefinitions", false},
	"Namespace":                      {"namespaces", false},
	"ServiceAccount":                 {"serviceaccounts", true},
	"ClusterRole":                    {"clusterroles", false},
	"ClusterRoleBinding":             {"clusterrolebindings", false},
	"Service":                        {"services", true},
	"Deployment":                     {"deployments", true},
	"MutatingWebhookConfiguration":   {"mutatingwebhookconfigurations", false},
	"ValidatingWebhookConfiguration": {"validatingwebhookconfigurations", false},
}

// Parse splits a YAML stream of manifests into objects.
func Parse(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 64<<10)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("install: parse manifests: %w", err)
		}
		if m == nil {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// Apply renders v and applies every object in order with server-side
// apply, forcing ownership of the fields it sets, and prints one line per
// object.
func Apply(ctx context.Context, cfg *rest.Config, v Values, out io.Writer) error {
	data, err := Render(v)
	if err != nil {
		return err
	}
	objs, err := Parse(data)
	if err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("install: client: %w", err)
	}
	force := true
	for _, o := range objs {
		r, ok := resources[o.GetKind()]
		if !ok {
			return fmt.Errorf("install: %s %s: kind not known to apply", o.GetKind(), o.GetName())
		}
		gv, err := schema.ParseGroupVersion(o.GetAPIVersion())
		if err != nil {
			return fmt.Errorf("install: %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		body, err := o.MarshalJSON()
		if err != nil {
			return fmt.Errorf("install: %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = client.Resource(gv.WithResource(r.resource))
		if r.namespaced {
			ri = client.Resource(gv.WithResource(r.resource)).Namespace(o.GetNamespace())
		}
		if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
			return fmt.Errorf("install: apply %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		fmt.Fprintf(out, "%s/%s serverside-applied\n", o.GetKind(), o.GetName())
	}
	return nil
}
