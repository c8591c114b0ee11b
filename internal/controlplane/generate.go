package controlplane

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/xds"
)

// Proxy is what the generator needs to know about one connected proxy.
type Proxy struct {
	Workload *Workload // nil for a gateway without a Workload resource
	// Gateway is set for an ingress gateway proxy: its labels select
	// Gateway resources and gateway policies.
	Gateway *GatewayProxy
}

// GatewayProxy describes an ingress gateway.
type GatewayProxy struct {
	Namespace, Name string
	Labels          map[string]string
}

func (p Proxy) ref() config.WorkloadRef {
	if p.Gateway != nil {
		return config.WorkloadRef{Namespace: p.Gateway.Namespace, Name: p.Gateway.Name, Labels: p.Gateway.Labels, Gateway: p.Gateway.Name}
	}
	return p.Workload.Ref()
}

// Input is everything the generator reads: the config snapshot, the
// resolved services and the trust bundle (PEM).
type Input struct {
	Snapshot *config.Snapshot
	Services []*Service
	Bundle   []byte
}

// Generate computes the full set of resources one proxy receives: the
// trust bundle, the mesh config, every service it may call, the
// destination rules, and only the policies that apply to its workload.
func Generate(in *Input, p Proxy) (xds.Set, error) {
	set := xds.Set{}
	add := func(name string, m proto.Message) error {
		r, err := xds.NewResource(name, m)
		if err != nil {
			return err
		}
		set.Add(r)
		return nil
	}
	if err := add(xds.RootCAName, xds.BundleSecret(in.Bundle)); err != nil {
		return nil, err
	}
	if err := add(xds.MeshName, in.Snapshot.Mesh); err != nil {
		return nil, err
	}
	for _, s := range in.Services {
		if err := add(s.Namespace+"/"+s.Name, s.Spec); err != nil {
			return nil, err
		}
	}
	root := in.Snapshot.Mesh.GetRootNamespace()
	ref := p.ref()
	for _, r := range in.Snapshot.Resources {
		name := r.Meta.Namespace + "/" + r.Meta.Name
		var m proto.Message
		switch spec := r.Spec.(type) {
		case *networkingv1alpha3.DestinationRule:
			m = spec
		case *securityv1beta1.PeerAuthentication:
			if config.Applies(r.Meta.Namespace, spec, ref, root) {
				m = spec
			}
		case *securityv1beta1.RequestAuthentication:
			if config.Applies(r.Meta.Namespace, spec, ref, root) {
				m = spec
			}
		case *securityv1beta1.AuthorizationPolicy:
			if config.Applies(r.Meta.Namespace, spec, ref, root) {
				m = spec
			}
		case *networkingv1alpha3.Gateway:
			if p.Gateway != nil && config.MatchLabels(spec.GetSelector(), p.Gateway.Labels) {
				m = spec
			}
		case *networkingv1alpha3.VirtualService:
			if p.Gateway != nil {
				m = spec
			}
		}
		if m == nil {
			continue
		}
		if err := add(name, m); err != nil {
			return nil, fmt.Errorf("controlplane: %s: %w", r.Key(), err)
		}
	}
	return set, nil
}
