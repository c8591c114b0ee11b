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
	g, err := newGeneration(in, nil)
	if err != nil {
		return nil, err
	}
	return g.set(p), nil
}

// generation is what one state of the mesh pushes, worked out once for
// all proxies: every resource is marshalled once (or taken from the
// previous generation when its config did not change); the types every
// proxy receives whole are shared sets, reused from the previous
// generation when their contents are the same, so a proxy holding them
// is skipped by pointer; and the policies are grouped by namespace, so
// a proxy's own are found without looking at the rest of the mesh.
type generation struct {
	root string
	// shared: type → the set every proxy receives (trust bundle, mesh
	// config, services, destination rules).
	shared map[string]*xds.Resources
	// policies: namespace → its PeerAuthentications,
	// RequestAuthentications and AuthorizationPolicies.
	policies map[string][]scoped
	gateways []gatewayEntry
	// virtualServices go to every gateway.
	virtualServices *xds.Resources
	// encoded carries resources made from snapshot specs over to the
	// next generation, by spec.
	encoded map[proto.Message]*xds.Resource
}

type scoped struct {
	namespace string
	spec      config.Scoped
	res       *xds.Resource
}

type gatewayEntry struct {
	spec *networkingv1alpha3.Gateway
	res  *xds.Resource
}

// newGeneration builds the generation for in, reusing what it can of
// prev (nil for none).
func newGeneration(in *Input, prev *generation) (*generation, error) {
	g := &generation{
		root:     in.Snapshot.Mesh.GetRootNamespace(),
		shared:   map[string]*xds.Resources{},
		policies: map[string][]scoped{},
		encoded:  map[proto.Message]*xds.Resource{},
	}
	if prev == nil {
		prev = &generation{}
	}
	// encode marshals a spec of the snapshot, or takes its resource from
	// the previous generation: snapshot specs are never modified.
	encode := func(name string, m proto.Message) (*xds.Resource, error) {
		if r := prev.encoded[m]; r != nil && r.Name == name {
			g.encoded[m] = r
			return r, nil
		}
		r, err := xds.NewResource(name, m)
		if err != nil {
			return nil, err
		}
		g.encoded[m] = r
		return r, nil
	}
	shared := xds.Set{}
	add := func(name string, m proto.Message) error {
		r, err := xds.NewResource(name, m)
		if err != nil {
			return err
		}
		shared.Add(r)
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
	vs := xds.Set{}
	for _, r := range in.Snapshot.Resources {
		// place puts the resource where this generation keeps its kind.
		var place func(*xds.Resource)
		switch spec := r.Spec.(type) {
		case *networkingv1alpha3.DestinationRule:
			place = shared.Add
		case *networkingv1alpha3.VirtualService:
			place = vs.Add
		case *networkingv1alpha3.Gateway:
			place = func(res *xds.Resource) { g.gateways = append(g.gateways, gatewayEntry{spec: spec, res: res}) }
		case *securityv1beta1.PeerAuthentication, *securityv1beta1.RequestAuthentication, *securityv1beta1.AuthorizationPolicy:
			ns, sc := r.Meta.Namespace, r.Spec.(config.Scoped)
			place = func(res *xds.Resource) {
				g.policies[ns] = append(g.policies[ns], scoped{namespace: ns, spec: sc, res: res})
			}
		default:
			continue
		}
		res, err := encode(r.Meta.Namespace+"/"+r.Meta.Name, r.Spec.(proto.Message))
		if err != nil {
			return nil, fmt.Errorf("controlplane: %s: %w", r.Key(), err)
		}
		place(res)
	}
	for t, rs := range shared {
		g.shared[t] = reuse(prev.shared[t], rs)
	}
	g.virtualServices = reuse(prev.virtualServices, vs[xds.TypeVirtualService])
	return g, nil
}

// reuse returns old, the previous generation's set, when it holds the
// same as the new one, so that proxies holding it see at once that
// nothing changed; otherwise the new set, shared.
func reuse(old, rs *xds.Resources) *xds.Resources {
	if rs == nil {
		return nil
	}
	if old != nil && old.SameAs(rs) {
		return old
	}
	return xds.NewShared(rs.ByName)
}

// set is everything proxy p receives in this generation.
func (g *generation) set(p Proxy) xds.Set {
	set := make(xds.Set, len(g.shared)+3)
	for t, rs := range g.shared {
		set[t] = rs
	}
	ref := p.ref()
	pick := func(ns string) {
		for _, s := range g.policies[ns] {
			if config.Applies(s.namespace, s.spec, ref, g.root) {
				set.Add(s.res)
			}
		}
	}
	pick(g.root)
	if ref.Namespace != g.root {
		pick(ref.Namespace)
	}
	if p.Gateway != nil {
		for _, gw := range g.gateways {
			if config.MatchLabels(gw.spec.GetSelector(), p.Gateway.Labels) {
				set.Add(gw.res)
			}
		}
		if g.virtualServices != nil {
			set[xds.TypeVirtualService] = g.virtualServices
		}
	}
	return set
}
