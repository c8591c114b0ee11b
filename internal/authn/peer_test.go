package authn

import (
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"palisade.dev/palisade/internal/config"
)

func pa(ns, name string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode, selector map[string]string, ports map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode) Policy {
	spec := &securityv1beta1.PeerAuthentication{}
	if mode != securityv1beta1.PeerAuthentication_MutualTLS_UNSET {
		spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	}
	if selector != nil {
		spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: selector}
	}
	for port, m := range ports {
		if spec.PortLevelMtls == nil {
			spec.PortLevelMtls = map[uint32]*securityv1beta1.PeerAuthentication_MutualTLS{}
		}
		spec.PortLevelMtls[port] = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: m}
	}
	return Policy{Namespace: ns, Name: name, Spec: spec}
}

const (
	unset      = securityv1beta1.PeerAuthentication_MutualTLS_UNSET
	strict     = securityv1beta1.PeerAuthentication_MutualTLS_STRICT
	permissive = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
	disable    = securityv1beta1.PeerAuthentication_MutualTLS_DISABLE
)

// Istio's PeerAuthentication precedence (concepts/security, "Peer
// authentication" and the PeerAuthentication reference).
func TestResolve(t *testing.T) {
	web := config.WorkloadRef{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}}
	app := map[string]string{"app": "web"}
	for _, c := range []struct {
		name     string
		policies []Policy
		port     uint32
		mode     Mode
		source   string
	}{
		{"no policy: PERMISSIVE", nil, 80, Permissive, ""},
		{"mesh-wide STRICT", []Policy{pa("istio-system", "default", strict, nil, nil)}, 80, Strict, "istio-system/default"},
		{"namespace over mesh", []Policy{pa("istio-system", "default", strict, nil, nil), pa("shop", "default", permissive, nil, nil)}, 80, Permissive, "shop/default"},
		{"workload over namespace", []Policy{pa("shop", "default", strict, nil, nil), pa("shop", "web", disable, app, nil)}, 80, Disable, "shop/web"},
		{"workload UNSET inherits the namespace", []Policy{pa("shop", "default", strict, nil, nil), pa("shop", "web", unset, app, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{8080: disable})}, 80, Strict, "shop/default"},
		{"port level over the workload", []Policy{pa("shop", "default", strict, nil, nil), pa("shop", "web", unset, app, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{8080: disable})}, 8080, Disable, "shop/web"},
		{"port level UNSET inherits", []Policy{pa("shop", "web", strict, app, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{8080: unset})}, 8080, Strict, "shop/web"},
		{"another namespace's policy does not apply", []Policy{pa("books", "default", disable, nil, nil)}, 80, Permissive, ""},
		{"a selector that does not match", []Policy{pa("shop", "db", disable, map[string]string{"app": "db"}, nil)}, 80, Permissive, ""},
		{"oldest (here: first by name) of two namespace policies", []Policy{pa("shop", "b", disable, nil, nil), pa("shop", "a", strict, nil, nil)}, 80, Strict, "shop/a"},
		// Istio ignores a root-namespace policy with a selector: it must
		// not downgrade a workload under mesh-wide STRICT.
		{"root-namespace selector policy is ignored", []Policy{pa("istio-system", "default", strict, nil, nil), pa("istio-system", "web-off", disable, app, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{80: disable})}, 80, Strict, "istio-system/default"},
		{"namespace policy without selector ignores portLevelMtls", []Policy{pa("shop", "default", strict, nil, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{80: disable})}, 80, Strict, "shop/default"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Resolve(c.policies, web, "istio-system").Mode(c.port)
			if d.Mode != c.mode || d.Source != c.source {
				t.Errorf("port %d: %s set by %q, want %s set by %q", c.port, d.Mode, d.Source, c.mode, c.source)
			}
		})
	}
}
