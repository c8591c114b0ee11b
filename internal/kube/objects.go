package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"palisade.dev/palisade/internal/config"
)

// Istio's kinds the control plane reads, each at the version it is watched
// in; the API server converts objects applied at v1beta1 or v1alpha3.
var istioKinds = []struct {
	GVR  schema.GroupVersionResource
	Kind config.Kind
}{
	{schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}, config.KindPeerAuthentication},
	{schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "requestauthentications"}, config.KindRequestAuthentication},
	{schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}, config.KindAuthorizationPolicy},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}, config.KindDestinationRule},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}, config.KindGateway},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}, config.KindVirtualService},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}, config.KindServiceEntry},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}, config.KindWorkloadEntry},
}

// Where the mesh config lives, as Istio reads it.
const (
	MeshNamespace = "istio-system"
	MeshConfigMap = "istio"
	MeshKey       = "mesh"
)

// ObjectName is how errors name an object in place of a file:
// "namespace/Kind/name".
func ObjectName(kind config.Kind, ns, name string) string {
	if ns == "" {
		return string(kind) + "/" + name
	}
	return ns + "/" + string(kind) + "/" + name
}

// DecodeObject runs one API object through the same decode and validation
// as a file holding it. The object is written out as YAML without what the
// API server adds (status, managedFields), so an error's line is the line
// of `kubectl get -o yaml` less those.
func DecodeObject(kind config.Kind, u *unstructured.Unstructured) (*config.Resource, error) {
	name := ObjectName(kind, u.GetNamespace(), u.GetName())
	obj := u.DeepCopy().Object
	delete(obj, "status")
	if md, ok := obj["metadata"].(map[string]any); ok {
		delete(md, "managedFields")
		if ann, ok := md["annotations"].(map[string]any); ok {
			delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
			if len(ann) == 0 {
				delete(md, "annotations")
			}
		}
	}
	data, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("kube: %s: %w", name, err)
	}
	rs, err := config.Decode(name, data)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("kube: %s: decoded %d resources, want 1", name, len(rs))
	}
	return rs[0], nil
}

// DecodeMesh reads the mesh config from the `istio` ConfigMap's data;
// without the key, Istio's defaults apply.
func DecodeMesh(data map[string]string) (*config.Snapshot, error) {
	file := ObjectName("ConfigMap", MeshNamespace, MeshConfigMap)
	v, ok := data[MeshKey]
	if !ok {
		return &config.Snapshot{Mesh: config.DefaultMesh(), MeshFile: file}, nil
	}
	m, err := config.DecodeMesh(file, []byte(v))
	if err != nil {
		return nil, err
	}
	return &config.Snapshot{Mesh: m, MeshFile: file}, nil
}

// LoadAll reads every Istio object, the Namespaces and the mesh ConfigMap
// once, as config.LoadAll reads files: the snapshot holds what decoded
// cleanly and the error every problem. `palisade analyze --kubeconfig` uses it.
func LoadAll(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) (*config.Snapshot, error) {
	var errs []error
	snap := &config.Snapshot{Version: 1, Mesh: config.DefaultMesh()}
	cm, err := client.CoreV1().ConfigMaps(MeshNamespace).Get(ctx, MeshConfigMap, metav1.GetOptions{})
	switch {
	case err == nil:
		m, err := DecodeMesh(cm.Data)
		if err != nil {
			errs = append(errs, err)
		} else {
			snap.Mesh, snap.MeshFile = m.Mesh, m.MeshFile
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("kube: read mesh config: %w", err)
	}
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: list namespaces: %w", err)
	}
	for _, n := range nss.Items {
		snap.Resources = append(snap.Resources, &config.Resource{
			APIVersion: "v1", Kind: config.KindNamespace, Meta: config.Meta{Name: n.Name, Labels: n.Labels},
			Source: config.Source{File: ObjectName(config.KindNamespace, "", n.Name), Line: 1},
		})
	}
	for _, k := range istioKinds {
		list, err := dyn.Resource(k.GVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("kube: list %s: %w", k.GVR.GroupResource(), err)
		}
		for i := range list.Items {
			r, err := DecodeObject(k.Kind, &list.Items[i])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			snap.Resources = append(snap.Resources, r)
		}
	}
	config.SortResources(snap.Resources)
	return snap, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
