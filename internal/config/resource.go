package config

import (
	"fmt"
	"sort"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Kind names a resource kind as users write it in YAML (`kind:`).
type Kind string

// The kinds Palisade reads.
const (
	KindPeerAuthentication    Kind = "PeerAuthentication"
	KindRequestAuthentication Kind = "RequestAuthentication"
	KindAuthorizationPolicy   Kind = "AuthorizationPolicy"
	KindDestinationRule       Kind = "DestinationRule"
	KindGateway               Kind = "Gateway"
	KindVirtualService        Kind = "VirtualService"
	KindServiceEntry          Kind = "ServiceEntry"
	KindWorkloadEntry         Kind = "WorkloadEntry"
	KindNamespace             Kind = "Namespace"
	KindServiceAccount        Kind = "ServiceAccount"

	// Legacy kinds, read only by `palisade convert`.
	KindLegacyPolicy       Kind = "Policy"             // authentication.istio.io/v1alpha1
	KindServiceRole        Kind = "ServiceRole"        // rbac.istio.io/v1alpha1
	KindServiceRoleBinding Kind = "ServiceRoleBinding" // rbac.istio.io/v1alpha1
	KindClusterRbacConfig  Kind = "ClusterRbacConfig"  // rbac.istio.io/v1alpha1

	// Palisade's own kinds (palisade.dev/v1alpha1).
	KindWorkload Kind = "Workload"
)

// Meta is the part of Kubernetes' ObjectMeta that Palisade uses.
type Meta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Source says where a resource was read from, for error messages.
type Source struct {
	File string // path as given to the loader
	Line int    // 1-based line of the document's first line
}

func (s Source) String() string {
	if s.File == "" {
		return "<input>"
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// Resource is one decoded document. Spec holds the kind's typed spec:
// a pointer to the istio.io/api message for Istio kinds
// (*securityv1beta1.AuthorizationPolicy, *networkingv1alpha3.ServiceEntry, ...),
// *WorkloadSpec for Workload, *LegacyPolicy etc. for legacy kinds, and nil for
// Namespace and ServiceAccount. Resources are immutable once decoded.
type Resource struct {
	APIVersion string
	Kind       Kind
	Meta       Meta
	Source     Source
	Spec       any

	// lines maps field paths as errors name them ("spec.rules[0].from")
	// to the 1-based line where they were written; nil for resources
	// built in code.
	lines map[string]int
}

// Key identifies a resource within a snapshot.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

func (k Key) String() string {
	if k.Namespace == "" {
		return fmt.Sprintf("%s %s", k.Kind, k.Name)
	}
	return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name)
}

// Key returns the resource's identity.
func (r *Resource) Key() Key {
	return Key{Kind: r.Kind, Namespace: r.Meta.Namespace, Name: r.Meta.Name}
}

// WorkloadSpec is Palisade's own kind (palisade.dev/v1alpha1 Workload): a
// workload that `palisade up` starts as a local process, with the service it
// backs. Istio has no kind for this; everything else about the workload
// (policies, destination rules) uses Istio's kinds.
type WorkloadSpec struct {
	// ServiceAccount the workload runs as; its SPIFFE ID is
	// spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount>.
	// Default "default".
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Service is the name of the service this workload backs, reachable as
	// <service>, <service>.<namespace> and
	// <service>.<namespace>.svc.<domain>. Default: metadata.name.
	Service string `json:"service,omitempty"`
	// Ports the service exposes. The app listens on 127.0.0.1 at the port
	// Palisade gives it in $PORT (first port) and $PALISADE_PORT_<NAME>.
	Ports []WorkloadPort `json:"ports"`
	// Address is the workload's own IP address, for a workload whose
	// traffic is captured (`palisade up --isolate`, or a pod): the mesh
	// reaches it at <address>:<port> and its sidecar's inbound capture
	// takes the connection. Empty: the sidecar's own inbound listeners
	// are the endpoints (explicit mode). A unicast IPv4 or IPv6 address,
	// neither loopback nor unspecified.
	Address string `json:"address,omitempty"`
	// Command, Args, Env and Dir start the process. Command is looked up in
	// PATH, or relative to the YAML file's directory when it contains a slash.
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	// Readiness, if set, is polled on the app before the workload counts as
	// healthy.
	Readiness *Probe `json:"readiness,omitempty"`
}

// WorkloadPort is one port of a Workload's service. Protocol follows
// Istio's rules (HTTP, HTTP2, GRPC, TCP, TLS, ...); when empty it is taken
// from the name's prefix (http-, grpc-, ...) or sniffed.
type WorkloadPort struct {
	Name     string `json:"name,omitempty"`
	Number   uint32 `json:"number"`
	Protocol string `json:"protocol,omitempty"`
}

// Probe is an HTTP readiness check against the app.
type Probe struct {
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
}

// HTTPGetAction names the path to GET; any 2xx/3xx answer is ready.
type HTTPGetAction struct {
	Path string `json:"path"`
}

// Snapshot is an immutable, versioned view of every resource loaded. Never
// modify a Snapshot or anything it points to.
type Snapshot struct {
	Version   uint64
	Mesh      *meshv1alpha1.MeshConfig // never nil; defaults applied
	MeshFile  string                   // where Mesh came from, "" for defaults
	Resources []*Resource              // sorted by kind, namespace, name
}

// OfKind returns the resources of one kind, in snapshot order.
func (s *Snapshot) OfKind(k Kind) []*Resource {
	var out []*Resource
	for _, r := range s.Resources {
		if r.Kind == k {
			out = append(out, r)
		}
	}
	return out
}

// SortResources orders resources by kind, namespace and name.
func SortResources(rs []*Resource) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i].Key(), rs[j].Key()
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

// DefaultTrustDomain and DefaultRootNamespace are Istio's defaults.
const (
	DefaultTrustDomain   = "cluster.local"
	DefaultRootNamespace = "istio-system"
)

// DefaultMesh returns a MeshConfig with Istio's defaults for the fields
// Palisade reads.
func DefaultMesh() *meshv1alpha1.MeshConfig {
	return &meshv1alpha1.MeshConfig{
		TrustDomain:   DefaultTrustDomain,
		RootNamespace: DefaultRootNamespace,
	}
}
