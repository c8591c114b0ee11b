package proxy

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// gatewayTable is the ingress gateway's compiled view of the Gateway and
// VirtualService resources that select it: per port, the servers (hosts,
// protocol, TLS) and the routes bound to them.
type gatewayTable struct {
	ports map[uint32]*gatewayPort
}

type gatewayPort struct {
	number  uint32
	servers []*gatewayServer
}

type gatewayServer struct {
	gateway  string // namespace/name
	protocol string // HTTP, HTTPS, HTTP2, GRPC, TLS, TCP
	hosts    []string
	tls      *networkingv1alpha3.ServerTLSSettings
	http     []*httpRoute
	tlsRts   []*tlsRoute
	tcp      []*tcpRoute
}

type httpRoute struct {
	vs      string // namespace/name[index]
	vsHosts []string
	matches []*networkingv1alpha3.HTTPMatchRequest
	regexes map[*networkingv1alpha3.StringMatch]*regexp.Regexp
	dest    destination
	route   *networkingv1alpha3.HTTPRoute
}

type tlsRoute struct {
	vs       string
	sniHosts []string
	dest     destination
}

type tcpRoute struct {
	vs   string
	dest destination
}

type destination struct {
	host string // fully qualified when the VirtualService wrote a short name
	port uint32 // 0: the service's only port
}

// isTLS reports whether clients speak TLS to the server (protocol HTTPS
// or TLS). The TLS mode alone does not say: its zero value is
// PASSTHROUGH, which a plain HTTP server with httpsRedirect also reads as.
func (s *gatewayServer) isTLS() bool {
	return s.protocol == "HTTPS" || s.protocol == "TLS"
}

// Terminates reports whether the server terminates TLS at the gateway.
func (s *gatewayServer) Terminates() bool {
	if s.tls == nil || !s.isTLS() {
		return false
	}
	switch s.tls.GetMode() {
	case networkingv1alpha3.ServerTLSSettings_SIMPLE, networkingv1alpha3.ServerTLSSettings_MUTUAL, networkingv1alpha3.ServerTLSSettings_OPTIONAL_MUTUAL:
		return true
	}
	return false
}

type namedGateway struct {
	namespace, name string
	spec            *networkingv1alpha3.Gateway
}

type namedVS struct {
	namespace, name string
	spec            *networkingv1alpha3.VirtualService
}

// compileGateways builds the table; errors name the resource and field.
func compileGateways(gws []namedGateway, vss []namedVS) (*gatewayTable, error) {
	t := &gatewayTable{ports: map[uint32]*gatewayPort{}}
	var errs []string
	for _, g := range gws {
		gwName := g.namespace + "/" + g.name
		for _, s := range g.spec.GetServers() {
			n := s.GetPort().GetNumber()
			gp := t.ports[n]
			if gp == nil {
				gp = &gatewayPort{number: n}
				t.ports[n] = gp
			}
			srv := &gatewayServer{gateway: gwName, protocol: strings.ToUpper(s.GetPort().GetProtocol()), tls: s.GetTls()}
			for _, h := range s.GetHosts() {
				// "namespace/host" restricts which VirtualServices bind;
				// the host part is what requests are matched against.
				if _, host, ok := strings.Cut(h, "/"); ok {
					h = host
				}
				srv.hosts = append(srv.hosts, strings.ToLower(h))
			}
			for _, vs := range vss {
				if !bindsTo(vs, g) || !hostsOverlap(qualifyAll(vs.spec.GetHosts(), vs.namespace), srv.hosts) {
					continue
				}
				for j, r := range vs.spec.GetHttp() {
					hr, err := compileHTTPRoute(vs, j, r)
					if err != nil {
						errs = append(errs, fmt.Sprintf("VirtualService %s/%s: spec.http[%d]: %v", vs.namespace, vs.name, j, err))
						continue
					}
					srv.http = append(srv.http, hr)
				}
				for j, r := range vs.spec.GetTls() {
					tr := &tlsRoute{vs: fmt.Sprintf("%s/%s[%d]", vs.namespace, vs.name, j), dest: destOf(r.GetRoute(), vs.namespace)}
					for _, m := range r.GetMatch() {
						tr.sniHosts = append(tr.sniHosts, m.GetSniHosts()...)
					}
					srv.tlsRts = append(srv.tlsRts, tr)
				}
				for j, r := range vs.spec.GetTcp() {
					srv.tcp = append(srv.tcp, &tcpRoute{vs: fmt.Sprintf("%s/%s[%d]", vs.namespace, vs.name, j), dest: destOf(r.GetRoute(), vs.namespace)})
				}
			}
			gp.servers = append(gp.servers, srv)
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("proxy: gateway routes: %s", strings.Join(errs, "; "))
	}
	return t, nil
}

func compileHTTPRoute(vs namedVS, j int, r *networkingv1alpha3.HTTPRoute) (*httpRoute, error) {
	hr := &httpRoute{vs: fmt.Sprintf("%s/%s[%d]", vs.namespace, vs.name, j), vsHosts: qualifyAll(vs.spec.GetHosts(), vs.namespace),
		matches: r.GetMatch(), regexes: map[*networkingv1alpha3.StringMatch]*regexp.Regexp{}, route: r}
	for _, m := range r.GetMatch() {
		sms := []*networkingv1alpha3.StringMatch{m.GetUri(), m.GetMethod(), m.GetAuthority(), m.GetScheme()}
		for _, h := range m.GetHeaders() {
			sms = append(sms, h)
		}
		for _, sm := range sms {
			if re := sm.GetRegex(); re != "" {
				c, err := regexp.Compile("^(?:" + re + ")$")
				if err != nil {
					return nil, fmt.Errorf("regex %q: %w", re, err)
				}
				hr.regexes[sm] = c
			}
		}
	}
	if len(r.GetRoute()) == 0 && r.GetRedirect() == nil && r.GetDirectResponse() == nil {
		return nil, fmt.Errorf("no route, redirect or directResponse")
	}
	hr.dest = destOf(r.GetRoute(), vs.namespace)
	return hr, nil
}

// destOf takes the route's first destination (weights are not used: a
// gateway that splits traffic is a traffic-management feature).
func destOf[T interface {
	GetDestination() *networkingv1alpha3.Destination
}](rs []T, ns string) destination {
	for _, r := range rs {
		d := r.GetDestination()
		return destination{host: qualify(d.GetHost(), ns), port: d.GetPort().GetNumber()}
	}
	return destination{}
}

func bindsTo(vs namedVS, g namedGateway) bool {
	for _, ref := range vs.spec.GetGateways() {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			ns, name = vs.namespace, ref
		}
		if ns == g.namespace && name == g.name {
			return true
		}
	}
	return false
}

func qualifyAll(hosts []string, ns string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = qualify(h, ns)
	}
	return out
}

func hostsOverlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if hostMatches(x, y) || hostMatches(y, x) {
				return true
			}
		}
	}
	return false
}

// serverFor picks the server of a port whose hosts match host: among
// the TLS servers by SNI for a TLS connection, among the plain ones by
// Host header otherwise, as Envoy's filter chains split them. The most
// specific host wins.
func (gp *gatewayPort) serverFor(host string, tls bool) *gatewayServer {
	host = strings.ToLower(hostOnly(strings.TrimSuffix(host, ".")))
	var best *gatewayServer
	bestLen := -1
	for _, s := range gp.servers {
		if s.isTLS() != tls {
			continue
		}
		for _, h := range s.hosts {
			if h == "*" || hostMatches(h, host) {
				l := len(h)
				if h == "*" {
					l = 0
				}
				if l > bestLen {
					best, bestLen = s, l
				}
			}
		}
	}
	return best
}

// route finds the first HTTP route of the server matching the request,
// and the match that selected it (nil for a route without matches).
// The Host must match one of the server's hosts too: a client that
// chose a server by SNI cannot reach another server's routes by Host.
func (s *gatewayServer) route(r *http.Request, port uint32) (*httpRoute, *networkingv1alpha3.HTTPMatchRequest) {
	host := strings.ToLower(hostOnly(strings.TrimSuffix(r.Host, ".")))
	if !s.servesHost(host) {
		return nil, nil
	}
	for _, hr := range s.http {
		hostOK := false
		for _, h := range hr.vsHosts {
			hostOK = hostOK || h == "*" || hostMatches(h, host)
		}
		if !hostOK {
			continue
		}
		if len(hr.matches) == 0 {
			return hr, nil
		}
		for _, m := range hr.matches {
			if hr.matchRequest(m, r, port) {
				return hr, m
			}
		}
	}
	return nil, nil
}

// rewritePath applies rewrite.uri as Envoy's route does for Istio: the
// prefix that matched is replaced; an exact or regex match has matched
// the whole path, which is replaced; without a uri match the route
// matched prefix "/", which is replaced.
func rewritePath(path, uri string, m *networkingv1alpha3.HTTPMatchRequest) string {
	matched := "/"
	switch {
	case m.GetUri().GetPrefix() != "":
		matched = m.GetUri().GetPrefix()
	case m.GetUri().GetExact() != "", m.GetUri().GetRegex() != "":
		matched = path
	}
	if !strings.HasPrefix(path, matched) {
		return path
	}
	return uri + strings.TrimPrefix(path, matched)
}

func (hr *httpRoute) matchRequest(m *networkingv1alpha3.HTTPMatchRequest, r *http.Request, port uint32) bool {
	if m.GetPort() != 0 && m.GetPort() != port {
		return false
	}
	if !hr.str(m.GetUri(), r.URL.Path) || !hr.str(m.GetMethod(), r.Method) || !hr.str(m.GetAuthority(), r.Host) {
		return false
	}
	for name, sm := range m.GetHeaders() {
		v := r.Header.Get(name)
		if _, present := r.Header[http.CanonicalHeaderKey(name)]; !present {
			return false
		}
		if !hr.str(sm, v) {
			return false
		}
	}
	for name, sm := range m.GetWithoutHeaders() {
		if _, present := r.Header[http.CanonicalHeaderKey(name)]; present && hr.str(sm, r.Header.Get(name)) {
			return false
		}
	}
	return true
}

func (hr *httpRoute) str(sm *networkingv1alpha3.StringMatch, v string) bool {
	if sm == nil {
		return true
	}
	switch {
	case sm.GetExact() != "":
		return v == sm.GetExact()
	case sm.GetPrefix() != "":
		return strings.HasPrefix(v, sm.GetPrefix())
	case sm.GetRegex() != "":
		return hr.regexes[sm].MatchString(v)
	}
	return true
}

// sniRoute finds the TLS route for a passthrough server by SNI.
func (s *gatewayServer) sniRoute(sni string) *tlsRoute {
	sni = strings.ToLower(sni)
	for _, tr := range s.tlsRts {
		if len(tr.sniHosts) == 0 {
			return tr
		}
		for _, h := range tr.sniHosts {
			if h == "*" || hostMatches(strings.ToLower(h), sni) {
				return tr
			}
		}
	}
	return nil
}

func (s *gatewayServer) servesHost(host string) bool {
	for _, h := range s.hosts {
		if h == "*" || hostMatches(h, host) {
			return true
		}
	}
	return false
}
