package controlplane

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/config"
)

// TLSModeLabel marks an endpoint that has a sidecar and so speaks Istio
// mTLS; auto mTLS uses it, as Istio does.
const (
	TLSModeLabel = "security.istio.io/tlsMode"
	TLSModeIstio = "istio"
)

// PortLabel marks an endpoint made for one port of a workload's service:
// it serves only the port of that name.
const PortLabel = "palisade.dev/port"

// DomainSuffix is the DNS suffix of mesh services (Kubernetes' default).
const DomainSuffix = "svc.cluster.local"

// WorkloadKey names a workload.
type WorkloadKey struct{ Namespace, Name string }

func (k WorkloadKey) String() string { return k.Namespace + "/" + k.Name }

// ParseWorkloadKey reads "namespace/name".
func ParseWorkloadKey(s string) (WorkloadKey, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return WorkloadKey{}, fmt.Errorf("controlplane: workload %q: want namespace/name", s)
	}
	return WorkloadKey{ns, name}, nil
}

// Workload is a workload the mesh knows about, with its sidecar's inbound
// addresses once its proxy has announced them.
type Workload struct {
	Key            WorkloadKey
	Labels         map[string]string
	ServiceAccount string
	Service        string // short service name, in Key.Namespace
	Ports          []config.WorkloadPort
	// Address is the workload's own IP when its traffic is captured:
	// the mesh reaches it at Address:port and the sidecar's inbound
	// capture takes the connection. Empty in explicit mode, where the
	// sidecar's inbound listeners are the endpoints.
	Address string
	// Inbound maps a service port number to the host:port of the sidecar
	// listener for it; empty until the proxy connects.
	Inbound map[uint32]string
}

// Ref returns what policy scoping needs of the workload.
func (w *Workload) Ref() config.WorkloadRef {
	return config.WorkloadRef{Namespace: w.Key.Namespace, Name: w.Key.Name, Labels: w.Labels, Services: []string{w.Service}}
}

// Registry yields the workloads of the mesh. The local mesh reads them
// from Workload resources; a Kubernetes registry reads pods.
type Registry interface {
	Workloads(snap *config.Snapshot) []*Workload
}

// ConfigRegistry reads workloads from palisade.dev/v1alpha1 Workload
// resources.
type ConfigRegistry struct{}

// Workloads implements Registry.
func (ConfigRegistry) Workloads(snap *config.Snapshot) []*Workload {
	var out []*Workload
	for _, r := range snap.OfKind(config.KindWorkload) {
		spec, ok := r.Spec.(*config.WorkloadSpec)
		if !ok {
			continue
		}
		sa := spec.ServiceAccount
		if sa == "" {
			sa = "default"
		}
		svc := spec.Service
		if svc == "" {
			svc = r.Meta.Name
		}
		out = append(out, &Workload{
			Key:            WorkloadKey{r.Meta.Namespace, r.Meta.Name},
			Labels:         r.Meta.Labels,
			ServiceAccount: sa,
			Service:        svc,
			Ports:          spec.Ports,
			Address:        spec.Address,
		})
	}
	return out
}

// Service is one service a proxy may call: an Istio ServiceEntry, either
// written by the user or made from the workloads that back a service.
// Its virtual IP is the ServiceEntry's addresses: a registry that knows
// one (a Kubernetes Service's ClusterIP) sets it, and AssignVIPs gives
// one to the services still without.
type Service struct {
	Namespace, Name string
	Spec            *networkingv1alpha3.ServiceEntry
}

// Hosts returns the host names a mesh service answers to.
func Hosts(name, ns string) []string {
	return []string{name + "." + ns + "." + DomainSuffix, name + "." + ns + ".svc", name + "." + ns, name}
}

// BuildServices makes the mesh's services: one per backed service name of
// the workloads (endpoints are the workloads' sidecars), plus the user's
// ServiceEntries with the WorkloadEntries their workloadSelector picks.
func BuildServices(snap *config.Snapshot, workloads []*Workload) []*Service {
	type key struct{ ns, name string }
	byName := map[key]*Service{}
	var order []key
	peers, root := peerPolicies(snap), snap.Mesh.GetRootNamespace()
	for _, w := range workloads {
		if w.Service == "" {
			continue // a pod that backs no Service
		}
		k := key{w.Key.Namespace, w.Service}
		s, ok := byName[k]
		if !ok {
			s = &Service{Namespace: k.ns, Name: k.name, Spec: &networkingv1alpha3.ServiceEntry{
				Hosts:      Hosts(k.name, k.ns),
				Location:   networkingv1alpha3.ServiceEntry_MESH_INTERNAL,
				Resolution: networkingv1alpha3.ServiceEntry_STATIC,
			}}
			byName[k] = s
			order = append(order, k)
		}
		for _, p := range w.Ports {
			if !hasPort(s.Spec.Ports, p.Number) {
				s.Spec.Ports = append(s.Spec.Ports, &networkingv1alpha3.ServicePort{Number: p.Number, Name: portName(p), Protocol: p.Protocol})
			}
		}
		if len(w.Inbound) == 0 {
			continue
		}
		// One endpoint per port, so auto mTLS can follow each port's
		// PeerAuthentication: Istio's clients send plaintext to a port
		// whose server DISABLEs mTLS.
		peer := authn.Resolve(peers, w.Ref(), root)
		for _, p := range w.Ports {
			addr, ok := w.Inbound[p.Number]
			if !ok {
				continue
			}
			host, n := w.Address, uint64(p.Number)
			if host == "" {
				// Explicit: peers dial the sidecar's inbound listener.
				h, port, err := net.SplitHostPort(addr)
				if err != nil {
					continue
				}
				host = h
				n, _ = strconv.ParseUint(port, 10, 16)
				if ip, err := netip.ParseAddr(h); err == nil && ip.IsUnspecified() {
					continue // a listener on every address names none to dial
				}
			}
			// Captured (Address set): peers dial the workload's own
			// address at the service port; its sidecar's inbound capture
			// answers, whatever listener it announced.
			labels := withLabel(w.Labels, PortLabel, portName(p))
			if peer.Mode(p.Number).Mode != authn.Disable {
				labels[TLSModeLabel] = TLSModeIstio
			}
			s.Spec.Endpoints = append(s.Spec.Endpoints, &networkingv1alpha3.WorkloadEntry{
				Address: host, Ports: map[string]uint32{portName(p): uint32(n)},
				Labels: labels, ServiceAccount: w.ServiceAccount,
			})
		}
	}
	out := make([]*Service, 0, len(order))
	for _, k := range order {
		out = append(out, byName[k])
	}
	entries := snap.OfKind(config.KindWorkloadEntry)
	for _, r := range snap.OfKind(config.KindServiceEntry) {
		se, ok := r.Spec.(*networkingv1alpha3.ServiceEntry)
		if !ok {
			continue
		}
		if sel := se.GetWorkloadSelector().GetLabels(); len(sel) > 0 {
			se = proto.Clone(se).(*networkingv1alpha3.ServiceEntry)
			for _, we := range entries {
				wspec := we.Spec.(*networkingv1alpha3.WorkloadEntry)
				if we.Meta.Namespace == r.Meta.Namespace && config.MatchLabels(sel, wspec.GetLabels()) {
					se.Endpoints = append(se.Endpoints, wspec)
				}
			}
		}
		out = append(out, &Service{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: se})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func hasPort(ps []*networkingv1alpha3.ServicePort, n uint32) bool {
	for _, p := range ps {
		if p.GetNumber() == n {
			return true
		}
	}
	return false
}

func portName(p config.WorkloadPort) string {
	if p.Name != "" {
		return p.Name
	}
	return "port-" + strconv.FormatUint(uint64(p.Number), 10)
}

func withLabel(labels map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(labels)+2)
	for k, v := range labels {
		out[k] = v
	}
	out[k] = v
	return out
}
