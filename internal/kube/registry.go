package kube

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
)

// Registry is the workload registry of Kubernetes mode: every pod that is
// not finished or being deleted is a workload (its labels, service account
// and the ports of the Service it backs). A pod backs the Service whose
// EndpointSlices list it (by targetRef), or else the first Service by
// name whose selector matches its labels. ServiceEntry and WorkloadEntry
// resources are added by the push as in every mode.
type Registry struct {
	pods       listerscorev1.PodLister
	services   listerscorev1.ServiceLister
	slices     listersdiscoveryv1.EndpointSliceLister
	namespaces listerscorev1.NamespaceLister
	infs       []cache.SharedIndexInformer
}

var _ controlplane.Registry = (*Registry)(nil)

func newRegistry(f informers.SharedInformerFactory) *Registry {
	pods, svcs, slices, nss := f.Core().V1().Pods(), f.Core().V1().Services(), f.Discovery().V1().EndpointSlices(), f.Core().V1().Namespaces()
	return &Registry{
		pods: pods.Lister(), services: svcs.Lister(), slices: slices.Lister(), namespaces: nss.Lister(),
		infs: []cache.SharedIndexInformer{pods.Informer(), svcs.Informer(), slices.Informer(), nss.Informer(), f.Core().V1().ServiceAccounts().Informer()},
	}
}

func (r *Registry) informers() []cache.SharedIndexInformer { return r.infs }

// Workloads implements controlplane.Registry.
func (r *Registry) Workloads(*config.Snapshot) []*controlplane.Workload {
	pods, err := r.pods.List(labels.Everything())
	if err != nil {
		return nil
	}
	backs := r.podServices()
	svcsByNS := map[string][]*corev1.Service{}
	if svcs, err := r.services.List(labels.Everything()); err == nil {
		sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
		for _, s := range svcs {
			svcsByNS[s.Namespace] = append(svcsByNS[s.Namespace], s)
		}
	}
	out := make([]*controlplane.Workload, 0, len(pods))
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		w := &controlplane.Workload{
			Key:            controlplane.WorkloadKey{Namespace: p.Namespace, Name: p.Name},
			Labels:         p.Labels,
			ServiceAccount: sa,
		}
		svc, ep := r.serviceOf(p, backs, svcsByNS[p.Namespace])
		if svc != nil {
			w.Service = svc.Name
			w.Ports = servicePorts(svc)
			w.Inbound = ep.inbound(svc)
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}

// endpoint is a pod's entry in one Service's EndpointSlices: its
// address and the slice's ports by name.
type endpoint struct {
	service string
	address string
	ports   map[string]int32
}

// inbound maps the Service's port numbers to the pod's address and
// target port, as the EndpointSlice lists them.
func (e endpoint) inbound(svc *corev1.Service) map[uint32]string {
	if e.address == "" {
		return nil
	}
	out := map[uint32]string{}
	for _, p := range svc.Spec.Ports {
		if tp, ok := e.ports[p.Name]; ok {
			out[uint32(p.Port)] = net.JoinHostPort(e.address, strconv.Itoa(int(tp)))
		}
	}
	return out
}

// podServices maps "namespace/pod" to its entries in EndpointSlices (by
// targetRef), sorted by Service name.
func (r *Registry) podServices() map[string][]endpoint {
	slices, err := r.slices.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := map[string][]endpoint{}
	for _, sl := range slices {
		svc := sl.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		ports := map[string]int32{}
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP) {
				name := ""
				if p.Name != nil {
					name = *p.Name
				}
				ports[name] = *p.Port
			}
		}
		for _, ep := range sl.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || len(ep.Addresses) == 0 {
				continue
			}
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			k := sl.Namespace + "/" + ep.TargetRef.Name
			out[k] = append(out[k], endpoint{service: svc, address: ep.Addresses[0], ports: ports})
		}
	}
	for _, eps := range out {
		sort.Slice(eps, func(i, j int) bool { return eps[i].service < eps[j].service })
	}
	return out
}

func (r *Registry) serviceOf(p *corev1.Pod, backs map[string][]endpoint, svcs []*corev1.Service) (*corev1.Service, endpoint) {
	for _, ep := range backs[p.Namespace+"/"+p.Name] {
		if s, err := r.services.Services(p.Namespace).Get(ep.service); err == nil {
			return s, ep
		}
	}
	for _, s := range svcs {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.Labels)) {
			return s, endpoint{}
		}
	}
	return nil, endpoint{}
}

// servicePorts turns a Service's ports into workload ports; the protocol
// is the appProtocol when set, else left to the port name's prefix as
// Istio does.
func servicePorts(s *corev1.Service) []config.WorkloadPort {
	var out []config.WorkloadPort
	for _, p := range s.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		wp := config.WorkloadPort{Name: p.Name, Number: uint32(p.Port), Protocol: namedProtocol(p.Name)}
		if p.AppProtocol != nil {
			wp.Protocol = appProtocol(*p.AppProtocol)
		}
		out = append(out, wp)
	}
	return out
}

// appProtocol maps Kubernetes appProtocol values to Istio's protocol
// names (kubernetes.io/h2c is HTTP2, as Istio reads it).
func appProtocol(v string) string {
	switch v {
	case "kubernetes.io/h2c":
		return "HTTP2"
	case "kubernetes.io/ws", "kubernetes.io/wss":
		return "HTTP"
	}
	return strings.ToUpper(v)
}

// namedProtocol is Istio's protocol selection by port name:
// <protocol>[-<suffix>]; "" when the name names none (then sniffed).
func namedProtocol(name string) string {
	p, _, _ := strings.Cut(strings.ToLower(name), "-")
	switch p {
	case "http", "http2", "https", "grpc", "tcp", "tls", "mongo", "mysql", "redis":
		return strings.ToUpper(p)
	}
	return ""
}

// Namespaces returns the names of every namespace.
func (r *Registry) Namespaces() []string {
	nss, err := r.namespaces.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(nss))
	for _, n := range nss {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// ListWorkloads lists the cluster's workloads once, for the CLI: one
// List of each kind into the registry's listers, no watch.
func ListWorkloads(ctx context.Context, client kubernetes.Interface) ([]*controlplane.Workload, error) {
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	pods, svcs, slices := idx(), idx(), idx()
	pl, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: list pods: %w", err)
	}
	for i := range pl.Items {
		pods.Add(&pl.Items[i]) //nolint:errcheck // the key func cannot fail on a pod
	}
	sl, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: list services: %w", err)
	}
	for i := range sl.Items {
		svcs.Add(&sl.Items[i]) //nolint:errcheck
	}
	el, err := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: list endpointslices: %w", err)
	}
	for i := range el.Items {
		slices.Add(&el.Items[i]) //nolint:errcheck
	}
	r := &Registry{pods: listerscorev1.NewPodLister(pods), services: listerscorev1.NewServiceLister(svcs), slices: listersdiscoveryv1.NewEndpointSliceLister(slices)}
	return r.Workloads(nil), nil
}
