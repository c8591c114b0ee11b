package controlplane

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/identity"
)

// Description is what `palisade describe workload` shows: like
// `istioctl x describe pod`, the effective mTLS mode of each port and
// what set it, the destination rules for its service, and every policy
// that applies to it.
type Description struct {
	Workload         string            `json:"workload"`
	SpiffeID         string            `json:"spiffeId"`
	Labels           map[string]string `json:"labels,omitempty"`
	Service          string            `json:"service"`
	Ports            []PortMTLS        `json:"ports"`
	DestinationRules []string          `json:"destinationRules,omitempty"`
	// VirtualServices route to the workload's service (a route
	// destination's host is it), as istioctl x describe pod lists them.
	VirtualServices []string        `json:"virtualServices,omitempty"`
	Authorization   []PolicySummary `json:"authorizationPolicies,omitempty"`
	RequestAuthn    []PolicySummary `json:"requestAuthentications,omitempty"`
	PeerAuthn       []PolicySummary `json:"peerAuthentications,omitempty"`
}

// PortMTLS is one port's effective peer authentication.
type PortMTLS struct {
	Port      uint32 `json:"port"`
	Name      string `json:"name,omitempty"`
	Protocol  string `json:"protocol,omitempty"`
	Mode      string `json:"mode"`
	SetBy     string `json:"setBy"` // namespace/name, or "mesh default"
	PortLevel bool   `json:"portLevel,omitempty"`
	Inbound   string `json:"inbound,omitempty"`
}

// PolicySummary names a policy and says how it applies.
type PolicySummary struct {
	Name   string `json:"name"` // namespace/name
	Action string `json:"action,omitempty"`
	Rules  int    `json:"rules,omitempty"`
	Scope  string `json:"scope"` // mesh, namespace, workload
	File   string `json:"file,omitempty"`
}

// Describe explains one workload.
func Describe(snap *config.Snapshot, workloads []*Workload, key WorkloadKey) (*Description, error) {
	var w *Workload
	for _, x := range workloads {
		if x.Key == key {
			w = x
		}
	}
	if w == nil {
		return nil, fmt.Errorf("controlplane: no workload %s", key)
	}
	td, err := trustDomain(snap)
	if err != nil {
		return nil, err
	}
	id, _ := identity.ForServiceAccount(td, key.Namespace, w.ServiceAccount)
	d := &Description{Workload: key.String(), SpiffeID: id.String(), Labels: w.Labels, Service: w.Service + "." + key.Namespace + "." + DomainSuffix}
	res := PeerResolver(snap, w.Ref())
	for _, p := range w.Ports {
		dec := res.Mode(p.Number)
		by := dec.Source
		if by == "" {
			by = "mesh default (no PeerAuthentication)"
		}
		d.Ports = append(d.Ports, PortMTLS{Port: p.Number, Name: p.Name, Protocol: p.Protocol, Mode: dec.Mode.String(), SetBy: by, PortLevel: dec.Port, Inbound: w.Inbound[p.Number]})
	}
	root := snap.Mesh.GetRootNamespace()
	ref := w.Ref()
	for _, r := range snap.Resources {
		name := r.Meta.Namespace + "/" + r.Meta.Name
		switch spec := r.Spec.(type) {
		case *networkingv1alpha3.DestinationRule:
			if drHost(spec.GetHost(), r.Meta.Namespace, d.Service) {
				d.DestinationRules = append(d.DestinationRules, fmt.Sprintf("%s (host %s, tls %s)", name, spec.GetHost(), tlsMode(spec)))
			}
		case *networkingv1alpha3.VirtualService:
			if routesTo(spec, r.Meta.Namespace, d.Service) {
				d.VirtualServices = append(d.VirtualServices, fmt.Sprintf("%s (hosts %s%s)", name, strings.Join(spec.GetHosts(), ","), gatewaysNote(spec)))
			}
		case *securityv1beta1.AuthorizationPolicy:
			if config.Applies(r.Meta.Namespace, spec, ref, root) {
				d.Authorization = append(d.Authorization, PolicySummary{Name: name, Action: spec.GetAction().String(), Rules: len(spec.GetRules()), Scope: scope(r.Meta.Namespace, spec, root), File: r.Source.String()})
			}
		case *securityv1beta1.RequestAuthentication:
			if config.Applies(r.Meta.Namespace, spec, ref, root) {
				d.RequestAuthn = append(d.RequestAuthn, PolicySummary{Name: name, Rules: len(spec.GetJwtRules()), Scope: scope(r.Meta.Namespace, spec, root), File: r.Source.String()})
			}
		case *securityv1beta1.PeerAuthentication:
			// Istio ignores a root-namespace PeerAuthentication with a
			// selector; so does the resolver above.
			if r.Meta.Namespace == root && config.HasSelector(spec) {
				continue
			}
			if config.Applies(r.Meta.Namespace, spec, ref, root) {
				d.PeerAuthn = append(d.PeerAuthn, PolicySummary{Name: name, Action: spec.GetMtls().GetMode().String(), Scope: scope(r.Meta.Namespace, spec, root), File: r.Source.String()})
			}
		}
	}
	return d, nil
}

func scope(ns string, spec config.Scoped, root string) string {
	switch {
	case config.HasSelector(spec):
		return "workload"
	case ns == root:
		return "mesh"
	}
	return "namespace"
}

// routesTo says whether a route of vs (in namespace ns) sends traffic to
// the service fqdn: HTTP, TCP or TLS routes alike.
func routesTo(vs *networkingv1alpha3.VirtualService, ns, fqdn string) bool {
	var hosts []string
	for _, r := range vs.GetHttp() {
		for _, d := range r.GetRoute() {
			hosts = append(hosts, d.GetDestination().GetHost())
		}
	}
	for _, r := range vs.GetTcp() {
		for _, d := range r.GetRoute() {
			hosts = append(hosts, d.GetDestination().GetHost())
		}
	}
	for _, r := range vs.GetTls() {
		for _, d := range r.GetRoute() {
			hosts = append(hosts, d.GetDestination().GetHost())
		}
	}
	for _, h := range hosts {
		if h != "" && h[0] != '*' && drHost(h, ns, fqdn) {
			return true
		}
	}
	return false
}

func gatewaysNote(vs *networkingv1alpha3.VirtualService) string {
	if len(vs.GetGateways()) == 0 {
		return ""
	}
	return "; gateways " + strings.Join(vs.GetGateways(), ",")
}

func tlsMode(dr *networkingv1alpha3.DestinationRule) string {
	if t := dr.GetTrafficPolicy().GetTls(); t != nil {
		return t.GetMode().String()
	}
	return "unset (auto mTLS)"
}

func drHost(host, ns, fqdn string) bool {
	if host == fqdn {
		return true
	}
	if len(host) > 0 && host[0] == '*' {
		return len(fqdn) >= len(host)-1 && fqdn[len(fqdn)-(len(host)-1):] == host[1:]
	}
	for _, h := range Hosts(fqdnName(fqdn), ns) {
		if h == host {
			return true
		}
	}
	return false
}

func fqdnName(fqdn string) string {
	for i := 0; i < len(fqdn); i++ {
		if fqdn[i] == '.' {
			return fqdn[:i]
		}
	}
	return fqdn
}

func trustDomain(snap *config.Snapshot) (spiffeid.TrustDomain, error) {
	td, err := spiffeid.TrustDomainFromString(snap.Mesh.GetTrustDomain())
	if err != nil {
		return td, fmt.Errorf("controlplane: mesh trustDomain: %w", err)
	}
	return td, nil
}
