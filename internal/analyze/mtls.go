package analyze

import (
	"fmt"
	"sort"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
)

// mtlsConflicts (PAL0002): a DestinationRule makes clients send plaintext
// to a port whose server, by the PeerAuthentication the data plane applies
// to it, runs STRICT and so refuses them.
//
// It works as the data plane does: the workloads behind the rule's host are
// those the control plane's registry yields (each backs
// <service>.<namespace>.svc.cluster.local); each one's mode per port comes
// from authn.Resolve (workload selector over namespace over the root
// namespace, portLevelMtls over the policy's mode); the client's TLS for a
// port is the rule's portLevelSettings for that port, else its
// trafficPolicy.tls. A rule that a more specific one in its own namespace
// shadows for a host sets nothing for it (proxy.Compiled.TLSFor picks the
// exact host over wildcards, the longer over the shorter).
//
// When no declared workload serves the host (policies analyzed alone), the
// namespace the host names is resolved at namespace level, and only when
// no PeerAuthentication with a selector there could decide otherwise.
func (a *analyzer) mtlsConflicts() {
	peers := a.snap.OfKind(config.KindPeerAuthentication)
	byName := map[string]*config.Resource{}
	for _, r := range peers {
		byName[r.Meta.Namespace+"/"+r.Meta.Name] = r
	}
	var drs []destinationRule
	for _, r := range a.snap.OfKind(config.KindDestinationRule) {
		spec := r.Spec.(*networkingv1alpha3.DestinationRule)
		drs = append(drs, destinationRule{res: r, spec: spec, host: qualify(spec.GetHost(), r.Meta.Namespace)})
	}
	workloads := controlplane.ConfigRegistry{}.Workloads(a.snap)
	for i := range drs {
		dr := &drs[i]
		tp := dr.spec.GetTrafficPolicy()
		if !disablesTLS(tp) {
			continue
		}
		// by deciding PeerAuthentication ("ns/name"): where it refuses
		// the plaintext.
		refused := map[string][]string{}
		served := false
		for _, w := range workloads {
			host := controlplane.Hosts(w.Service, w.Key.Namespace)[0]
			if !hostMatches(dr.host, host) {
				continue
			}
			served = true
			if shadowed(dr, drs, host) {
				continue
			}
			peer := controlplane.PeerResolver(a.snap, w.Ref())
			for _, port := range workloadPorts(w, tp) {
				if clientTLS(tp, port) != networkingv1alpha3.ClientTLSSettings_DISABLE {
					continue
				}
				if d := peer.Mode(port); d.Mode == authn.Strict {
					refused[d.Source] = append(refused[d.Source], fmt.Sprintf("workload %s port %d", w.Key, port))
				}
			}
		}
		if !served {
			a.namespaceConflict(dr, peers, refused)
		}
		sources := make([]string, 0, len(refused))
		for s := range refused {
			sources = append(sources, s)
		}
		sort.Strings(sources)
		for _, s := range sources {
			pa := byName[s]
			if pa == nil { // cannot happen: decisions name snapshot policies
				continue
			}
			a.findings = append(a.findings, Finding{
				Code:  CodeMTLSConflict,
				Level: Error,
				Message: fmt.Sprintf("%s: DestinationRule for host %q disables TLS toward %s, but PeerAuthentication %s/%s (%s) makes it STRICT there: those requests will be refused",
					dr.res.Source, dr.spec.GetHost(), strings.Join(refused[s], ", "), pa.Meta.Namespace, pa.Meta.Name, pa.Source),
				Resources: []string{dr.res.Key().String(), pa.Key().String()},
			})
		}
	}
}

// namespaceConflict resolves the namespace a host no declared workload
// serves names, as a workload without labels there, and adds to refused
// what its mode refuses.
func (a *analyzer) namespaceConflict(dr *destinationRule, peers []*config.Resource, refused map[string][]string) {
	ns := hostNamespace(dr.host)
	if ns == "" {
		return
	}
	for _, r := range peers {
		if (r.Meta.Namespace == ns || r.Meta.Namespace == a.rootNS) && config.HasSelector(r.Spec.(*securityv1beta1.PeerAuthentication)) {
			return // a workload policy may decide otherwise: nothing certain to report
		}
	}
	d := controlplane.PeerResolver(a.snap, config.WorkloadRef{Namespace: ns}).Mode(0)
	if d.Mode != authn.Strict {
		return
	}
	tp := dr.spec.GetTrafficPolicy()
	var where []string
	if clientTLS(tp, 0) == networkingv1alpha3.ClientTLSSettings_DISABLE {
		where = append(where, "namespace "+ns)
	} else {
		for _, pl := range tp.GetPortLevelSettings() {
			if n := pl.GetPort().GetNumber(); clientTLS(tp, n) == networkingv1alpha3.ClientTLSSettings_DISABLE {
				where = append(where, fmt.Sprintf("namespace %s port %d", ns, n))
			}
		}
	}
	if len(where) > 0 {
		refused[d.Source] = append(refused[d.Source], where...)
	}
}

type destinationRule struct {
	res  *config.Resource
	spec *networkingv1alpha3.DestinationRule
	host string // qualified
}

// shadowed reports whether another rule in dr's namespace is the one the
// data plane picks for host: an exact host over a wildcard, a longer host
// over a shorter one, and between equals the first by name.
func shadowed(dr *destinationRule, drs []destinationRule, host string) bool {
	rank := func(d *destinationRule) int {
		r := len(d.host)
		if !strings.HasPrefix(d.host, "*") {
			r += 1 << 20
		}
		return r
	}
	for i := range drs {
		o := &drs[i]
		if o == dr || o.res.Meta.Namespace != dr.res.Meta.Namespace || !hostMatches(o.host, host) {
			continue
		}
		if ro, rd := rank(o), rank(dr); ro > rd || ro == rd && o.res.Meta.Name < dr.res.Meta.Name {
			return true
		}
	}
	return false
}

// workloadPorts are the ports to check for w: its service's ports, or,
// for a workload that declares none, the rule's own port-level ports and
// 0 for the rest.
func workloadPorts(w *controlplane.Workload, tp *networkingv1alpha3.TrafficPolicy) []uint32 {
	var ports []uint32
	for _, p := range w.Ports {
		ports = append(ports, p.Number)
	}
	if len(ports) > 0 {
		return ports
	}
	ports = append(ports, 0)
	for _, pl := range tp.GetPortLevelSettings() {
		ports = append(ports, pl.GetPort().GetNumber())
	}
	return ports
}

// clientTLS is the TLS mode a client uses toward port: the rule's
// portLevelSettings for the port when it sets tls, else trafficPolicy.tls
// (as proxy.Compiled.TLSFor). With neither, auto mTLS applies, which never
// conflicts: the result is then ISTIO_MUTUAL.
func clientTLS(tp *networkingv1alpha3.TrafficPolicy, port uint32) networkingv1alpha3.ClientTLSSettings_TLSmode {
	tls := tp.GetTls()
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port && pl.GetTls() != nil {
			tls = pl.GetTls()
		}
	}
	if tls == nil {
		return networkingv1alpha3.ClientTLSSettings_ISTIO_MUTUAL
	}
	return tls.GetMode()
}

func disablesTLS(tp *networkingv1alpha3.TrafficPolicy) bool {
	if tp.GetTls() != nil && tp.GetTls().GetMode() == networkingv1alpha3.ClientTLSSettings_DISABLE {
		return true
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetTls() != nil && pl.GetTls().GetMode() == networkingv1alpha3.ClientTLSSettings_DISABLE {
			return true
		}
	}
	return false
}

// qualify turns a DestinationRule's short host into its FQDN relative to
// the rule's namespace, as Istio and the proxy do.
func qualify(host, ns string) string {
	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*") || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + "." + controlplane.DomainSuffix
}

func hostMatches(pattern, host string) bool {
	if pattern == host {
		return true
	}
	return strings.HasPrefix(pattern, "*") && strings.HasSuffix(host, pattern[1:])
}

// hostNamespace returns the namespace a qualified mesh host names:
// "svc.ns.svc.cluster.local" and "*.ns.svc.cluster.local" name ns; other
// hosts ("*", "*.local", hosts outside the mesh) name none ("").
func hostNamespace(host string) string {
	rest, ok := strings.CutSuffix(host, "."+controlplane.DomainSuffix)
	if !ok {
		return ""
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 2 || parts[1] == "" || parts[1] == "*" {
		return ""
	}
	return parts[1]
}
