package analyze

import (
	"sort"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

func sortStrings(s []string) { sort.Strings(s) }

// jwtNotRequired: RequestAuthentication only rejects invalid tokens; a
// request without any token still passes unless an AuthorizationPolicy
// requires a request principal (ALLOW with requestPrincipals, or DENY with
// notRequestPrincipals). The policy must cover at least the
// RequestAuthentication's workloads: same namespace or the root namespace,
// and a selector that is empty or a subset of the RequestAuthentication's.
func (a *analyzer) jwtNotRequired() {
	for _, ra := range a.snap.OfKind(config.KindRequestAuthentication) {
		rs := ra.Spec.(*securityv1beta1.RequestAuthentication)
		raLabels := rs.GetSelector().GetMatchLabels()
		covered := false
		for _, ap := range a.snap.OfKind(config.KindAuthorizationPolicy) {
			as := ap.Spec.(*securityv1beta1.AuthorizationPolicy)
			if ap.Meta.Namespace != ra.Meta.Namespace && ap.Meta.Namespace != a.rootNS {
				continue
			}
			if !config.MatchLabels(as.GetSelector().GetMatchLabels(), raLabels) {
				continue
			}
			if requiresPrincipal(as) {
				covered = true
				break
			}
		}
		if !covered {
			a.add(CodeJWTNotRequired, Warning, ra,
				"no AuthorizationPolicy requires a request principal for these workloads; requests without a token are let through (add a DENY policy with notRequestPrincipals: [\"*\"] or an ALLOW policy with requestPrincipals)")
		}
	}
}

func requiresPrincipal(ap *securityv1beta1.AuthorizationPolicy) bool {
	for _, rule := range ap.GetRules() {
		for _, from := range rule.GetFrom() {
			src := from.GetSource()
			switch ap.GetAction() {
			case securityv1beta1.AuthorizationPolicy_ALLOW:
				if len(src.GetRequestPrincipals()) > 0 {
					return true
				}
			case securityv1beta1.AuthorizationPolicy_DENY:
				if len(src.GetNotRequestPrincipals()) > 0 {
					return true
				}
			}
		}
		if ap.GetAction() == securityv1beta1.AuthorizationPolicy_ALLOW {
			for _, c := range rule.GetWhen() {
				if c.GetKey() == "request.auth.principal" && len(c.GetValues()) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// unknownNamespaces: a policy (PeerAuthentication, RequestAuthentication,
// AuthorizationPolicy) in a namespace that no Namespace resource and no
// workload declares, and that is not the root namespace. A typo in
// metadata.namespace silently protects nothing. Only checked when the
// snapshot has Namespace resources or workloads to compare with.
func (a *analyzer) unknownNamespaces() {
	known := map[string]bool{a.rootNS: true}
	for _, r := range a.snap.OfKind(config.KindNamespace) {
		known[r.Meta.Name] = true
	}
	for _, w := range a.workloads {
		known[w.Namespace] = true
	}
	if len(known) == 1 {
		return
	}
	for _, r := range a.snap.Resources {
		switch r.Kind {
		case config.KindPeerAuthentication, config.KindRequestAuthentication, config.KindAuthorizationPolicy:
		default:
			continue
		}
		if !known[r.Meta.Namespace] {
			a.add(CodeUnknownNamespace, Warning, r, "namespace %q is not declared by any Namespace resource or workload; the policy applies to nothing", r.Meta.Namespace)
		}
	}
}

// legacyKinds: the pre-1.4 kinds are read but never enforced.
func (a *analyzer) legacyKinds() {
	for _, r := range a.snap.Resources {
		switch r.Kind {
		case config.KindLegacyPolicy, config.KindServiceRole, config.KindServiceRoleBinding, config.KindClusterRbacConfig:
			a.add(CodeLegacyKind, Info, r, "%s (%s) is not enforced; run `palisade convert` to turn it into PeerAuthentication/AuthorizationPolicy", r.Kind, r.APIVersion)
		}
	}
}
