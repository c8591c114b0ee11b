package authn

import (
	"fmt"
	"sort"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

// Mode is an effective peer authentication mode.
type Mode int

// Effective modes. There is no UNSET: resolution always ends in one of
// these.
const (
	Permissive Mode = iota
	Strict
	Disable
)

func (m Mode) String() string {
	switch m {
	case Strict:
		return "STRICT"
	case Disable:
		return "DISABLE"
	}
	return "PERMISSIVE"
}

// Policy is one PeerAuthentication with its name.
type Policy struct {
	Namespace, Name string
	Spec            *securityv1beta1.PeerAuthentication
}

// Decision is the mode of one port and the policy that set it ("" when
// the default applied).
type Decision struct {
	Mode   Mode
	Source string // "namespace/name", or "" for the mesh default
	Port   bool   // set by portLevelMtls
}

// Resolver answers the mode for each port of one workload.
type Resolver struct {
	base  Decision
	ports map[uint32]Decision
}

// Resolve compiles the policies that apply to w.
func Resolve(policies []Policy, w config.WorkloadRef, rootNS string) *Resolver {
	var mesh, ns, wl []Policy
	for _, p := range policies {
		if !config.Applies(p.Namespace, p.Spec, w, rootNS) {
			continue
		}
		switch {
		case config.HasSelector(p.Spec) && p.Namespace == rootNS:
			// Istio applies a root-namespace PeerAuthentication only as
			// the mesh-wide policy: one with a selector is ignored
			// (pilot's peer authentication applier), so it can neither
			// loosen nor tighten any workload.
			continue
		case config.HasSelector(p.Spec):
			wl = append(wl, p)
		case p.Namespace == rootNS && p.Namespace != w.Namespace:
			mesh = append(mesh, p)
		default:
			ns = append(ns, p)
		}
	}
	r := &Resolver{base: Decision{Mode: Permissive}, ports: map[uint32]Decision{}}
	// Istio takes the oldest policy when several tie; without creation
	// times the name order is the stable choice.
	for _, level := range [][]Policy{first(mesh), first(ns), first(wl)} {
		for _, p := range level {
			if m, ok := mode(p.Spec.GetMtls().GetMode()); ok {
				r.base = Decision{Mode: m, Source: p.Namespace + "/" + p.Name}
			}
			// Istio ignores portLevelMtls on policies without a selector
			// (validation rejects them), so only workload policies carry it.
			if !config.HasSelector(p.Spec) {
				continue
			}
			for port, pm := range p.Spec.GetPortLevelMtls() {
				if m, ok := mode(pm.GetMode()); ok {
					r.ports[port] = Decision{Mode: m, Source: p.Namespace + "/" + p.Name, Port: true}
				}
			}
		}
	}
	return r
}

// Mode returns the decision for a workload port.
func (r *Resolver) Mode(port uint32) Decision {
	if d, ok := r.ports[port]; ok {
		return d
	}
	return r.base
}

// String describes the resolver, for describe and logs.
func (r *Resolver) String() string {
	s := fmt.Sprintf("default %s", r.base.Mode)
	ports := make([]int, 0, len(r.ports))
	for p := range r.ports {
		ports = append(ports, int(p))
	}
	sort.Ints(ports)
	for _, p := range ports {
		s += fmt.Sprintf(", port %d %s", p, r.ports[uint32(p)].Mode)
	}
	return s
}

func first(ps []Policy) []Policy {
	if len(ps) == 0 {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Namespace+"/"+ps[i].Name < ps[j].Namespace+"/"+ps[j].Name })
	return ps[:1]
}

func mode(m securityv1beta1.PeerAuthentication_MutualTLS_Mode) (Mode, bool) {
	switch m {
	case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
		return Strict, true
	case securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE:
		return Permissive, true
	case securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
		return Disable, true
	}
	return 0, false
}
