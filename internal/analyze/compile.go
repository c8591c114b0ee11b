package analyze

import (
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authz"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/jwt"
)

// proxyRefusals (PAL0008): the proxy compiles every AuthorizationPolicy
// and RequestAuthentication it receives, and refuses the whole update
// when one fails. Validation should reject all of that first; this runs
// the proxy's own checks (authz.Validate, jwt.Validate) so that whatever
// still gets past it shows here rather than in a proxy's log.
func (a *analyzer) proxyRefusals() {
	opts := authz.Options{RootNamespace: a.rootNS}
	for _, r := range a.snap.OfKind(config.KindAuthorizationPolicy) {
		p := authz.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: r.Spec.(*securityv1beta1.AuthorizationPolicy)}
		if err := authz.Validate([]authz.Policy{p}, opts); err != nil {
			a.add(CodeProxyRefuses, Error, r, "the proxy refuses it: %v", err)
		}
	}
	for _, r := range a.snap.OfKind(config.KindRequestAuthentication) {
		p := jwt.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: r.Spec.(*securityv1beta1.RequestAuthentication)}
		if err := jwt.Validate(p); err != nil {
			a.add(CodeProxyRefuses, Error, r, "the proxy refuses it: %v", err)
		}
	}
}
