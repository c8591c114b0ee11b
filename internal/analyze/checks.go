package analyze

import (
	"fmt"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

type analyzer struct {
	snap     *config.Snapshot
	rootNS   string
	findings []Finding
	// workloads are the declared workloads: Workload resources (labels from
	// metadata.labels) and WorkloadEntry resources (labels from spec).
	workloads []config.WorkloadRef
	// gatewaySelectors are the label sets Gateway resources select: the
	// gateway workloads, which are often not declared otherwise.
	gatewaySelectors []map[string]string
}

func newAnalyzer(snap *config.Snapshot) *analyzer {
	a := &analyzer{snap: snap, rootNS: snap.Mesh.GetRootNamespace()}
	for _, r := range snap.Resources {
		switch s := r.Spec.(type) {
		case *config.WorkloadSpec:
			svc := s.Service
			if svc == "" {
				svc = r.Meta.Name
			}
			a.workloads = append(a.workloads, config.WorkloadRef{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Labels: r.Meta.Labels, Services: []string{svc}})
		case *networkingv1alpha3.WorkloadEntry:
			a.workloads = append(a.workloads, config.WorkloadRef{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Labels: s.GetLabels()})
		case *networkingv1alpha3.Gateway:
			if len(s.GetSelector()) > 0 {
				a.gatewaySelectors = append(a.gatewaySelectors, s.GetSelector())
			}
		}
	}
	return a
}

func (a *analyzer) add(code string, level Level, r *config.Resource, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	res := []string{r.Key().String()}
	a.findings = append(a.findings, Finding{Code: code, Level: level, Message: r.Source.String() + ": " + msg, Resources: res})
}

// unknownProviders: a CUSTOM policy whose provider the mesh config lacks
// fails closed: every request it selects is denied.
func (a *analyzer) unknownProviders() {
	known := map[string]bool{}
	for _, p := range a.snap.Mesh.GetExtensionProviders() {
		known[p.GetName()] = true
	}
	for _, r := range a.snap.OfKind(config.KindAuthorizationPolicy) {
		s := r.Spec.(*securityv1beta1.AuthorizationPolicy)
		if s.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
			continue
		}
		if name := s.GetProvider().GetName(); !known[name] {
			where := "the mesh config (defaults: no mesh.yaml)"
			if a.snap.MeshFile != "" {
				where = a.snap.MeshFile
			}
			a.add(CodeUnknownProvider, Error, r, "extension provider %q is not declared in extensionProviders of %s; requests it selects will be denied", name, where)
		}
	}
}

// selectorsWithoutWorkloads: a policy whose selector matches no declared
// workload. Skipped when the snapshot declares no workload at all (nothing
// to compare with, e.g. when analyzing policies alone). Gateway selectors
// count as workloads, since gateways are often not declared otherwise.
func (a *analyzer) selectorsWithoutWorkloads() {
	if len(a.workloads) == 0 {
		return
	}
	for _, r := range a.snap.Resources {
		sc, ok := r.Spec.(config.Scoped)
		if !ok || r.Kind == config.KindDestinationRule {
			continue
		}
		labels := sc.GetSelector().GetMatchLabels()
		if len(labels) == 0 {
			continue
		}
		if a.matchesWorkload(r.Meta.Namespace, labels) {
			continue
		}
		a.add(CodeSelectorNoMatch, Warning, r, "selector %s matches no workload in namespace %s", formatLabels(labels), r.Meta.Namespace)
	}
}

func (a *analyzer) matchesWorkload(ns string, labels map[string]string) bool {
	for _, w := range a.workloads {
		if (ns == a.rootNS || w.Namespace == ns) && config.MatchLabels(labels, w.Labels) {
			return true
		}
	}
	for _, g := range a.gatewaySelectors {
		if config.MatchLabels(labels, g) {
			return true
		}
	}
	return false
}

func formatLabels(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sortStrings(parts)
	return strings.Join(parts, ",")
}
