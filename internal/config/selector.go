package config

import (
	typev1beta1 "istio.io/api/type/v1beta1"
)

// WorkloadRef is what policy scoping needs to know about a workload.
type WorkloadRef struct {
	Namespace string
	Name      string
	Labels    map[string]string
	// Services are the short names of the services the workload backs
	// (in its own namespace), for targetRef of kind Service.
	Services []string
	// Gateway is the name of the Gateway the workload serves, if it is a
	// gateway, for targetRef of kind Gateway.
	Gateway string
}

// Scoped is implemented by the Istio policy kinds that carry a workload
// selector and target references (AuthorizationPolicy,
// RequestAuthentication; PeerAuthentication has only a selector).
type Scoped interface {
	GetSelector() *typev1beta1.WorkloadSelector
}

type targeted interface {
	GetTargetRef() *typev1beta1.PolicyTargetReference
	GetTargetRefs() []*typev1beta1.PolicyTargetReference
}

// Applies reports whether a policy declared in namespace policyNS applies
// to the workload w, with Istio's scoping rules: a policy in the root
// namespace without selector or targetRef applies mesh-wide; one in any
// other namespace applies to that namespace's workloads; a selector narrows
// it to workloads whose labels include every matchLabels pair (a selector in
// the root namespace selects across all namespaces); targetRef(s) narrow it
// to the workloads of a Service or Gateway in the policy's namespace.
func Applies(policyNS string, spec Scoped, w WorkloadRef, rootNS string) bool {
	if policyNS != rootNS && policyNS != w.Namespace {
		return false
	}
	if t, ok := spec.(targeted); ok {
		refs := t.GetTargetRefs()
		if r := t.GetTargetRef(); r != nil {
			refs = append([]*typev1beta1.PolicyTargetReference{r}, refs...)
		}
		if len(refs) > 0 {
			if policyNS != w.Namespace {
				return false
			}
			for _, r := range refs {
				if targets(r, policyNS, w) {
					return true
				}
			}
			return false
		}
	}
	sel := spec.GetSelector()
	if sel == nil || len(sel.GetMatchLabels()) == 0 {
		return true
	}
	return MatchLabels(sel.GetMatchLabels(), w.Labels)
}

// HasSelector reports whether the policy names particular workloads
// (selector or targetRef) rather than a whole namespace.
func HasSelector(spec Scoped) bool {
	if t, ok := spec.(targeted); ok && (t.GetTargetRef() != nil || len(t.GetTargetRefs()) > 0) {
		return true
	}
	return spec.GetSelector() != nil && len(spec.GetSelector().GetMatchLabels()) > 0
}

// MatchLabels reports whether labels include every pair of want.
func MatchLabels(want, labels map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func targets(r *typev1beta1.PolicyTargetReference, policyNS string, w WorkloadRef) bool {
	if r.GetNamespace() != "" && r.GetNamespace() != policyNS {
		return false
	}
	switch r.GetKind() {
	case "Service":
		for _, s := range w.Services {
			if s == r.GetName() {
				return true
			}
		}
	case "Gateway":
		return w.Gateway != "" && w.Gateway == r.GetName()
	}
	return false
}
