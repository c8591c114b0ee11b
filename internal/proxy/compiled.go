package proxy

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/authz"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/xds"
)

// Compiled is one immutable, ready-to-serve config.
type Compiled struct {
	Version     uint64
	Mesh        *meshv1alpha1.MeshConfig
	TrustDomain spiffeid.TrustDomain
	Bundle      *identity.Bundle
	Peer        *authn.Resolver
	Services    []*Upstream
	hosts       map[string]*Upstream // "host:port" → upstream
	addrs       addrIndex            // captured destinations and DNS names
	drs         []destinationRule
	Policies    Policies
	Authz       *authz.Engine      // nil when no AuthorizationPolicy applies
	JWT         *jwt.Authenticator // nil when no RequestAuthentication applies
	gateway     *gatewayTable      // ingress gateways only
}

// Policies are the raw policies that apply to this workload, kept for
// the engines that compile them and for config dumps.
type Policies struct {
	Peer    []authn.Policy
	Request []NamedRequestAuthn
	Authz   []NamedAuthz
}

// NamedRequestAuthn and NamedAuthz pair a policy with its namespace/name.
type (
	NamedRequestAuthn struct {
		Namespace, Name string
		Spec            *securityv1beta1.RequestAuthentication
	}
	NamedAuthz struct {
		Namespace, Name string
		Spec            *securityv1beta1.AuthorizationPolicy
	}
)

// Upstream is one port of one service this proxy may call.
type Upstream struct {
	Service   string // namespace/name
	Namespace string
	Host      string // canonical host (first of the ServiceEntry's hosts)
	Port      uint32
	PortName  string
	Protocol  Protocol
	External  bool // MESH_EXTERNAL
	Endpoints []Endpoint
	// Identities is secure naming: the SPIFFE IDs a server of this service
	// may present (its endpoints' service accounts and subjectAltNames).
	Identities []spiffeid.ID
}

// Endpoint is one address of an upstream.
type Endpoint struct {
	Addr string // host:port
	// Sidecar is set when the endpoint runs a sidecar that speaks Istio
	// mTLS (label security.istio.io/tlsMode=istio), for auto mTLS.
	Sidecar bool
}

type destinationRule struct {
	namespace, name string
	host            string
	spec            *networkingv1alpha3.DestinationRule
}

// Self describes the proxy's own workload, for scoping. Ref.Gateway is
// set for an ingress gateway.
type Self struct {
	Ref            config.WorkloadRef
	ServiceAccount string
}

// Compiler turns pushed resources into a Compiled config for one
// workload. Keys is shared across compiles so fetched JWKS survive
// config changes.
type Compiler struct {
	Self Self
	Keys *jwt.KeyStore
}

// Compile builds a Compiled config from pushed resources.
func (cc *Compiler) Compile(res Resources) (*Compiled, error) {
	self := cc.Self
	c := &Compiled{Mesh: config.DefaultMesh(), hosts: map[string]*Upstream{}, addrs: newAddrIndex()}
	if m, ok := res[xds.TypeMeshConfig][xds.MeshName].(*meshv1alpha1.MeshConfig); ok {
		c.Mesh = m
	}
	td, err := spiffeid.TrustDomainFromString(c.Mesh.GetTrustDomain())
	if err != nil {
		return nil, fmt.Errorf("proxy: mesh trustDomain: %w", err)
	}
	c.TrustDomain = td
	if s, ok := res[xds.TypeSecret][xds.RootCAName].(*tlsv3.Secret); ok {
		b, err := xds.BundlePEM(s)
		if err != nil {
			return nil, err
		}
		roots, err := parseCerts(b)
		if err != nil {
			return nil, fmt.Errorf("proxy: trust bundle: %w", err)
		}
		c.Bundle, err = identity.NewBundle(td, roots...)
		if err != nil {
			return nil, fmt.Errorf("proxy: trust bundle: %w", err)
		}
	}
	var errs []error
	for _, name := range res.Names(xds.TypeServiceEntry) {
		se := res[xds.TypeServiceEntry][name].(*networkingv1alpha3.ServiceEntry)
		ns, _, _ := strings.Cut(name, "/")
		ups, err := upstreams(td, name, ns, se)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, u := range ups {
			c.Services = append(c.Services, u)
			for _, h := range se.GetHosts() {
				c.addHost(strings.ToLower(h), u)
			}
			if ns == self.Ref.Namespace && !u.External {
				if short, _, ok := strings.Cut(u.Host, "."); ok {
					c.addHost(short, u)
				}
			}
			c.addrs.add(u, se.GetAddresses(), se.GetHosts(), ns == self.Ref.Namespace)
		}
	}
	for _, name := range res.Names(xds.TypeDestinationRule) {
		dr := res[xds.TypeDestinationRule][name].(*networkingv1alpha3.DestinationRule)
		ns, n, _ := strings.Cut(name, "/")
		c.drs = append(c.drs, destinationRule{namespace: ns, name: n, host: qualify(dr.GetHost(), ns), spec: dr})
	}
	for _, name := range res.Names(xds.TypePeerAuthentication) {
		ns, n, _ := strings.Cut(name, "/")
		c.Policies.Peer = append(c.Policies.Peer, authn.Policy{Namespace: ns, Name: n, Spec: res[xds.TypePeerAuthentication][name].(*securityv1beta1.PeerAuthentication)})
	}
	for _, name := range res.Names(xds.TypeRequestAuthentication) {
		ns, n, _ := strings.Cut(name, "/")
		c.Policies.Request = append(c.Policies.Request, NamedRequestAuthn{ns, n, res[xds.TypeRequestAuthentication][name].(*securityv1beta1.RequestAuthentication)})
	}
	for _, name := range res.Names(xds.TypeAuthorizationPolicy) {
		ns, n, _ := strings.Cut(name, "/")
		c.Policies.Authz = append(c.Policies.Authz, NamedAuthz{ns, n, res[xds.TypeAuthorizationPolicy][name].(*securityv1beta1.AuthorizationPolicy)})
	}
	if self.Ref.Gateway != "" {
		var gws []namedGateway
		var vss []namedVS
		for _, name := range res.Names(xds.TypeGateway) {
			ns, n, _ := strings.Cut(name, "/")
			gws = append(gws, namedGateway{ns, n, res[xds.TypeGateway][name].(*networkingv1alpha3.Gateway)})
		}
		for _, name := range res.Names(xds.TypeVirtualService) {
			ns, n, _ := strings.Cut(name, "/")
			vss = append(vss, namedVS{ns, n, res[xds.TypeVirtualService][name].(*networkingv1alpha3.VirtualService)})
		}
		t, err := compileGateways(gws, vss)
		if err != nil {
			errs = append(errs, err)
		}
		c.gateway = t
	}
	root := c.Mesh.GetRootNamespace()
	c.Peer = authn.Resolve(c.Policies.Peer, self.Ref, root)
	if len(c.Policies.Authz) > 0 {
		ps := make([]authz.Policy, len(c.Policies.Authz))
		for i, p := range c.Policies.Authz {
			ps[i] = authz.Policy{Namespace: p.Namespace, Name: p.Name, Spec: p.Spec}
		}
		e, err := authz.Compile(ps, self.Ref, authz.Options{RootNamespace: root})
		if err != nil {
			errs = append(errs, err)
		} else {
			c.Authz = e
		}
	}
	if len(c.Policies.Request) > 0 {
		ps := make([]jwt.Policy, len(c.Policies.Request))
		for i, p := range c.Policies.Request {
			ps[i] = jwt.Policy{Namespace: p.Namespace, Name: p.Name, Spec: p.Spec}
		}
		a, err := jwt.Compile(ps, self.Ref, root, cc.Keys)
		if err != nil {
			errs = append(errs, err)
		} else {
			c.JWT = a
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Compiled) addHost(h string, u *Upstream) {
	key := h + ":" + strconv.FormatUint(uint64(u.Port), 10)
	if _, dup := c.hosts[key]; !dup {
		c.hosts[key] = u
	}
}

// Lookup finds the upstream for a host (as an app wrote it, with or
// without port) and a default port.
func (c *Compiled) Lookup(hostport string, defaultPort uint32) *Upstream {
	host, port := splitHostPort(strings.ToLower(hostport), defaultPort)
	host = strings.TrimSuffix(host, ".")
	return c.hosts[host+":"+strconv.FormatUint(uint64(port), 10)]
}

// LookupService finds a service port by host; port 0 picks the service's
// only port.
func (c *Compiled) LookupService(host string, port uint32) *Upstream {
	if port != 0 {
		return c.Lookup(host, port)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var found *Upstream
	for _, u := range c.Services {
		if u.Host != host {
			continue
		}
		if found != nil {
			return nil // several ports: the route must name one
		}
		found = u
	}
	return found
}

// TLSFor returns the DestinationRule TLS settings for an upstream as seen
// from a client in clientNS, and the rule that set them (nil, "" when none
// does). Istio's lookup order: the client's namespace, then the service's,
// then the root namespace; within one, an exact host before wildcards.
func (c *Compiled) TLSFor(u *Upstream, clientNS string) (*networkingv1alpha3.ClientTLSSettings, string) {
	for _, ns := range []string{clientNS, u.Namespace, c.Mesh.GetRootNamespace()} {
		var best *destinationRule
		for i := range c.drs {
			d := &c.drs[i]
			if d.namespace != ns || !hostMatches(d.host, u.Host) {
				continue
			}
			if best == nil || len(d.host) > len(best.host) || (!strings.HasPrefix(d.host, "*") && strings.HasPrefix(best.host, "*")) {
				best = d
			}
		}
		if best == nil {
			continue
		}
		tp := best.spec.GetTrafficPolicy()
		tls := tp.GetTls()
		for _, pl := range tp.GetPortLevelSettings() {
			if pl.GetPort().GetNumber() == u.Port && pl.GetTls() != nil {
				tls = pl.GetTls()
			}
		}
		return tls, best.namespace + "/" + best.name
	}
	return nil, ""
}

func hostMatches(pattern, host string) bool {
	if pattern == host {
		return true
	}
	if strings.HasPrefix(pattern, "*") {
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}

// qualify turns a DestinationRule's short host into its FQDN, as Istio
// does relative to the rule's namespace.
func qualify(host, ns string) string {
	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*") || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + ".svc.cluster.local"
}

func upstreams(td spiffeid.TrustDomain, name, ns string, se *networkingv1alpha3.ServiceEntry) ([]*Upstream, error) {
	if len(se.GetHosts()) == 0 {
		return nil, fmt.Errorf("proxy: service %s has no hosts", name)
	}
	var ids []spiffeid.ID
	seen := map[string]bool{}
	addID := func(id spiffeid.ID) {
		if !seen[id.String()] {
			seen[id.String()] = true
			ids = append(ids, id)
		}
	}
	for _, ep := range se.GetEndpoints() {
		if sa := ep.GetServiceAccount(); sa != "" {
			id, err := spiffeid.FromSegments(td, "ns", ns, "sa", sa)
			if err != nil {
				return nil, fmt.Errorf("proxy: service %s: endpoint service account %q: %w", name, sa, err)
			}
			addID(id)
		}
	}
	for _, san := range se.GetSubjectAltNames() {
		if id, err := spiffeid.FromString(san); err == nil {
			addID(id)
		}
	}
	var out []*Upstream
	for _, p := range se.GetPorts() {
		u := &Upstream{
			Service: name, Namespace: ns, Host: strings.ToLower(se.GetHosts()[0]),
			Port: p.GetNumber(), PortName: p.GetName(), Protocol: ProtocolOf(p.GetProtocol(), p.GetName()),
			External: se.GetLocation() == networkingv1alpha3.ServiceEntry_MESH_EXTERNAL, Identities: ids,
		}
		for _, ep := range se.GetEndpoints() {
			port := p.GetNumber()
			if tp := p.GetTargetPort(); tp != 0 {
				port = tp
			}
			if only, ok := ep.GetLabels()["palisade.dev/port"]; ok && only != p.GetName() {
				continue // an endpoint made for another port of the service
			}
			if n, ok := ep.GetPorts()[p.GetName()]; ok {
				port = n
			}
			addr := ep.GetAddress()
			if strings.HasPrefix(addr, "unix://") {
				continue
			}
			u.Endpoints = append(u.Endpoints, Endpoint{
				Addr:    joinHostPort(addr, port),
				Sidecar: ep.GetLabels()["security.istio.io/tlsMode"] == "istio",
			})
		}
		if len(se.GetEndpoints()) == 0 && se.GetResolution() == networkingv1alpha3.ServiceEntry_DNS {
			port := p.GetNumber()
			if tp := p.GetTargetPort(); tp != 0 {
				port = tp
			}
			for _, h := range se.GetHosts() {
				if !strings.HasPrefix(h, "*") {
					u.Endpoints = append(u.Endpoints, Endpoint{Addr: joinHostPort(h, port)})
				}
			}
		}
		sort.SliceStable(u.Endpoints, func(i, j int) bool { return u.Endpoints[i].Addr < u.Endpoints[j].Addr })
		out = append(out, u)
	}
	return out, nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificates")
	}
	return out, nil
}
