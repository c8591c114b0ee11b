package config

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// validHost reports whether h is a hostname Istio accepts where wildcards
// are allowed: "*", "*.example.com", "*example.com" as the first label
// only, short names ("reviews") and FQDNs.
func validHost(h string) bool {
	if h == "*" {
		return true
	}
	if h == "" || len(h) > 255 {
		return false
	}
	rest := h
	if strings.HasPrefix(h, "*") {
		rest = strings.TrimPrefix(strings.TrimPrefix(h, "*"), ".")
		if rest == "" {
			return false
		}
	}
	for _, label := range strings.Split(rest, ".") {
		if !IsDNS1123Label(strings.ToLower(label)) {
			return false
		}
	}
	return true
}

// validFQDN reports whether h is a hostname without wildcards.
func validFQDN(h string) bool { return !strings.Contains(h, "*") && validHost(h) }

func (c *checker) destinationRule(s *networkingv1alpha3.DestinationRule) {
	if s.GetHost() == "" {
		c.errorf("spec.host", "host is required")
	} else if !validHost(s.GetHost()) {
		c.errorf("spec.host", "invalid host %q", s.GetHost())
	}
	c.trafficPolicy("spec.trafficPolicy", s.GetTrafficPolicy())
	seen := map[string]bool{}
	for i, sub := range s.GetSubsets() {
		p := fmt.Sprintf("spec.subsets[%d]", i)
		switch {
		case sub.GetName() == "":
			c.errorf(p+".name", "subset name is required")
		case !IsDNS1123Label(sub.GetName()):
			c.errorf(p+".name", "invalid subset name %q: must be a DNS-1123 label", sub.GetName())
		case seen[sub.GetName()]:
			c.errorf(p+".name", "duplicate subset name %q", sub.GetName())
		}
		seen[sub.GetName()] = true
		c.trafficPolicy(p+".trafficPolicy", sub.GetTrafficPolicy())
	}
}

func (c *checker) trafficPolicy(p string, tp *networkingv1alpha3.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.GetTls() == nil && tp.GetConnectionPool() == nil && tp.GetLoadBalancer() == nil &&
		tp.GetOutlierDetection() == nil && len(tp.GetPortLevelSettings()) == 0 && tp.GetTunnel() == nil && tp.GetProxyProtocol() == nil {
		c.errorf(p, "traffic policy must have at least one field")
		return
	}
	c.clientTLS(p+".tls", tp.GetTls())
	for i, pl := range tp.GetPortLevelSettings() {
		pp := fmt.Sprintf("%s.portLevelSettings[%d]", p, i)
		if pl.GetPort() == nil {
			c.errorf(pp+".port", "portLevelSettings must have a port")
		} else {
			c.port(pp+".port.number", pl.GetPort().GetNumber())
		}
		if pl.GetTls() == nil && pl.GetConnectionPool() == nil && pl.GetLoadBalancer() == nil && pl.GetOutlierDetection() == nil {
			c.errorf(pp, "port traffic policy must have at least one field")
		}
		c.clientTLS(pp+".tls", pl.GetTls())
	}
}

func (c *checker) clientTLS(p string, t *networkingv1alpha3.ClientTLSSettings) {
	if t == nil {
		return
	}
	c.enum(p+".mode", int32(t.GetMode()), networkingv1alpha3.ClientTLSSettings_TLSmode_name)
	switch t.GetMode() {
	case networkingv1alpha3.ClientTLSSettings_ISTIO_MUTUAL:
		for _, f := range []struct{ name, v string }{
			{"clientCertificate", t.GetClientCertificate()}, {"privateKey", t.GetPrivateKey()},
			{"caCertificates", t.GetCaCertificates()}, {"credentialName", t.GetCredentialName()},
		} {
			if f.v != "" {
				c.errorf(p+"."+f.name, "ISTIO_MUTUAL uses the mesh's certificates; %s must not be set", f.name)
			}
		}
	case networkingv1alpha3.ClientTLSSettings_MUTUAL, networkingv1alpha3.ClientTLSSettings_SIMPLE:
		if t.GetCredentialName() != "" {
			if t.GetClientCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" {
				c.errorf(p+".credentialName", "cannot specify client certificates or CA certificate when credentialName is set")
			}
			return
		}
		if t.GetMode() == networkingv1alpha3.ClientTLSSettings_MUTUAL {
			if t.GetClientCertificate() == "" {
				c.errorf(p+".clientCertificate", "client certificate required for mutual tls")
			}
			if t.GetPrivateKey() == "" {
				c.errorf(p+".privateKey", "private key required for mutual tls")
			}
		}
	}
}

func (c *checker) serviceEntry(s *networkingv1alpha3.ServiceEntry) {
	c.enum("spec.resolution", int32(s.GetResolution()), networkingv1alpha3.ServiceEntry_Resolution_name)
	if s.GetWorkloadSelector() != nil && len(s.GetEndpoints()) > 0 {
		c.errorf("spec.workloadSelector", "only one of workloadSelector or endpoints is allowed in a ServiceEntry")
	}
	if len(s.GetHosts()) == 0 {
		c.errorf("spec.hosts", "service entry must have at least one host")
	}
	for i, h := range s.GetHosts() {
		if h == "*" || !validHost(h) {
			c.errorf(fmt.Sprintf("spec.hosts[%d]", i), "invalid host %q", h)
		}
	}
	cidr := false
	for i, a := range s.GetAddresses() {
		cidr = cidr || strings.Contains(a, "/")
		c.ipOrCIDR(fmt.Sprintf("spec.addresses[%d]", i), a)
	}
	res := s.GetResolution()
	if cidr && res != networkingv1alpha3.ServiceEntry_NONE && res != networkingv1alpha3.ServiceEntry_STATIC {
		c.errorf("spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")
	}
	names, numbers := map[string]bool{}, map[uint32]bool{}
	for i, port := range s.GetPorts() {
		p := fmt.Sprintf("spec.ports[%d]", i)
		if names[port.GetName()] {
			c.errorf(p+".name", "port name %q already defined", port.GetName())
		}
		if numbers[port.GetNumber()] {
			c.errorf(p+".number", "port %d already defined", port.GetNumber())
		}
		names[port.GetName()], numbers[port.GetNumber()] = true, true
		if !validPortName(port.GetName()) {
			c.errorf(p+".name", "invalid port name %q", port.GetName())
		}
		if port.GetProtocol() != "" && !ValidProtocol(port.GetProtocol()) {
			c.errorf(p+".protocol", "unsupported protocol %q", port.GetProtocol())
		}
		c.port(p+".number", port.GetNumber())
		if port.GetTargetPort() != 0 {
			c.port(p+".targetPort", port.GetTargetPort())
		}
	}
	switch res {
	case networkingv1alpha3.ServiceEntry_NONE:
		if len(s.GetEndpoints()) > 0 {
			c.errorf("spec.endpoints", "no endpoints should be provided for resolution type NONE")
		}
	case networkingv1alpha3.ServiceEntry_STATIC:
		for i, ep := range s.GetEndpoints() {
			p := fmt.Sprintf("spec.endpoints[%d]", i)
			if _, err := netip.ParseAddr(ep.GetAddress()); err != nil && !strings.HasPrefix(ep.GetAddress(), "unix://") {
				c.errorf(p+".address", "endpoint address %q must be an IP address for resolution STATIC", ep.GetAddress())
				continue
			}
			c.endpointPorts(p, ep, names)
		}
	case networkingv1alpha3.ServiceEntry_DNS, networkingv1alpha3.ServiceEntry_DNS_ROUND_ROBIN:
		if len(s.GetEndpoints()) == 0 {
			for i, h := range s.GetHosts() {
				if !validFQDN(h) {
					c.errorf(fmt.Sprintf("spec.hosts[%d]", i), "hosts must be FQDN if no endpoints are provided for resolution mode %s", res)
				}
			}
		}
		if res == networkingv1alpha3.ServiceEntry_DNS_ROUND_ROBIN && len(s.GetEndpoints()) > 1 {
			c.errorf("spec.endpoints", "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN")
		}
		for i, ep := range s.GetEndpoints() {
			p := fmt.Sprintf("spec.endpoints[%d]", i)
			if _, err := netip.ParseAddr(ep.GetAddress()); err != nil && !validFQDN(ep.GetAddress()) {
				c.errorf(p+".address", "endpoint address %q is not a valid FQDN or an IP address", ep.GetAddress())
			}
			c.endpointPorts(p, ep, names)
		}
	}
	if res != networkingv1alpha3.ServiceEntry_NONE && len(s.GetHosts()) > 1 {
		for i, port := range s.GetPorts() {
			proto := strings.ToUpper(port.GetProtocol())
			if !strings.HasPrefix(proto, "HTTP") && !strings.HasPrefix(proto, "GRPC") && proto != "TLS" {
				c.errorf(fmt.Sprintf("spec.ports[%d].protocol", i), "multiple hosts provided with non-HTTP, non-TLS ports")
				break
			}
		}
	}
}

func (c *checker) endpointPorts(p string, ep *networkingv1alpha3.WorkloadEntry, service map[string]bool) {
	for name, n := range ep.GetPorts() {
		pp := p + ".ports." + name
		if service != nil && !service[name] {
			c.errorf(pp, "endpoint port %q is not defined by the service entry", name)
		}
		if !validPortName(name) {
			c.errorf(pp, "invalid port name %q", name)
		}
		c.port(pp, n)
	}
}

func (c *checker) workloadEntry(p string, w *networkingv1alpha3.WorkloadEntry) {
	addr := w.GetAddress()
	switch {
	case addr == "" && w.GetNetwork() == "":
		c.errorf(p+".address", "address is required")
	case strings.HasPrefix(addr, "unix://"):
		sock := strings.TrimPrefix(addr, "unix://")
		if !strings.HasPrefix(sock, "@") && (!path.IsAbs(sock) || strings.HasSuffix(sock, "/")) {
			c.errorf(p+".address", "%q is not an absolute path to a file", sock)
		}
		if len(w.GetPorts()) > 0 {
			c.errorf(p+".ports", "unix socket endpoints must not have ports")
		}
	case addr != "":
		if _, err := netip.ParseAddr(addr); err != nil && !validFQDN(addr) {
			c.errorf(p+".address", "address %q is not a valid FQDN or an IP address", addr)
		}
	}
	c.endpointPorts(p, w, nil)
}

func (c *checker) gateway(s *networkingv1alpha3.Gateway) {
	if len(s.GetServers()) == 0 {
		c.errorf("spec.servers", "gateway must have at least one server")
	}
	names := map[string]bool{}
	for i, srv := range s.GetServers() {
		p := fmt.Sprintf("spec.servers[%d]", i)
		if len(srv.GetHosts()) == 0 {
			c.errorf(p+".hosts", "server config must contain at least one host")
		}
		for j, h := range srv.GetHosts() {
			host := h
			if ns, rest, ok := strings.Cut(h, "/"); ok {
				if ns != "*" && ns != "." && !IsDNS1123Label(ns) {
					c.errorf(fmt.Sprintf("%s.hosts[%d]", p, j), "invalid namespace %q in host %q", ns, h)
				}
				host = rest
			}
			if !validHost(host) {
				c.errorf(fmt.Sprintf("%s.hosts[%d]", p, j), "invalid host %q", h)
			}
		}
		port := srv.GetPort()
		if port == nil {
			c.errorf(p+".port", "port is required")
			continue
		}
		proto := strings.ToUpper(port.GetProtocol())
		if !ValidProtocol(proto) {
			c.errorf(p+".port.protocol", "invalid protocol %q", port.GetProtocol())
		}
		c.port(p+".port.number", port.GetNumber())
		if port.GetName() == "" {
			c.errorf(p+".port.name", "port name must be set")
		} else if names[port.GetName()] {
			c.errorf(p+".port.name", "port names in servers must be unique: duplicate name %s", port.GetName())
		}
		names[port.GetName()] = true
		isTLS := proto == "HTTPS" || proto == "TLS"
		isHTTP := proto == "HTTP" || proto == "HTTP2" || proto == "GRPC" || proto == "GRPC-WEB" || proto == "HTTP_PROXY"
		tls := srv.GetTls()
		switch {
		case isTLS && tls == nil:
			c.errorf(p+".tls", "server must have TLS settings for HTTPS/TLS protocols")
		case !isTLS && tls != nil && isHTTP:
			if !tls.GetHttpsRedirect() || tls.GetServerCertificate() != "" || tls.GetPrivateKey() != "" || tls.GetCaCertificates() != "" || tls.GetCredentialName() != "" {
				c.errorf(p+".tls", "server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)")
			}
		case !isTLS && tls != nil:
			c.errorf(p+".tls", "server cannot have TLS settings for non HTTPS/TLS ports")
		case isTLS:
			c.serverTLS(p+".tls", tls)
		}
	}
}

func (c *checker) serverTLS(p string, t *networkingv1alpha3.ServerTLSSettings) {
	c.enum(p+".mode", int32(t.GetMode()), networkingv1alpha3.ServerTLSSettings_TLSmode_name)
	switch t.GetMode() {
	case networkingv1alpha3.ServerTLSSettings_ISTIO_MUTUAL:
		if t.GetServerCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" || t.GetCredentialName() != "" {
			c.errorf(p, "ISTIO_MUTUAL TLS cannot have associated certificates, keys or credentialName")
		}
	case networkingv1alpha3.ServerTLSSettings_SIMPLE, networkingv1alpha3.ServerTLSSettings_MUTUAL, networkingv1alpha3.ServerTLSSettings_OPTIONAL_MUTUAL:
		if t.GetCredentialName() != "" {
			return
		}
		if t.GetServerCertificate() == "" {
			c.errorf(p+".serverCertificate", "%s TLS requires a server certificate (or credentialName)", t.GetMode())
		}
		if t.GetPrivateKey() == "" {
			c.errorf(p+".privateKey", "%s TLS requires a private key (or credentialName)", t.GetMode())
		}
		if t.GetMode() != networkingv1alpha3.ServerTLSSettings_SIMPLE && t.GetCaCertificates() == "" {
			c.errorf(p+".caCertificates", "%s TLS requires a client CA bundle", t.GetMode())
		}
	}
}

func (c *checker) virtualService(s *networkingv1alpha3.VirtualService) {
	mesh := len(s.GetGateways()) == 0
	for i, g := range s.GetGateways() {
		if g == "mesh" {
			mesh = true
			continue
		}
		name := g
		if ns, rest, ok := strings.Cut(g, "/"); ok {
			if !IsDNS1123Label(ns) {
				c.errorf(fmt.Sprintf("spec.gateways[%d]", i), "invalid gateway namespace %q", ns)
			}
			name = rest
		}
		if !IsDNS1123Label(name) {
			c.errorf(fmt.Sprintf("spec.gateways[%d]", i), "invalid gateway name %q", g)
		}
	}
	if len(s.GetHosts()) == 0 && len(s.GetGateways()) > 0 {
		c.errorf("spec.hosts", "virtual service must have at least one host")
	}
	for i, h := range s.GetHosts() {
		p := fmt.Sprintf("spec.hosts[%d]", i)
		if _, err := netip.ParseAddr(h); err == nil {
			continue
		}
		if !validHost(h) {
			c.errorf(p, "invalid host %q", h)
		} else if h == "*" && mesh {
			c.errorf(p, "wildcard host * is not allowed for virtual services bound to the mesh gateway")
		}
	}
	if len(s.GetHttp()) == 0 && len(s.GetTcp()) == 0 && len(s.GetTls()) == 0 {
		c.errorf("spec", "http, tcp or tls must be provided in virtual service")
	}
	for i, r := range s.GetHttp() {
		for j, d := range r.GetRoute() {
			p := fmt.Sprintf("spec.http[%d].route[%d].destination", i, j)
			if d.GetDestination() == nil || d.GetDestination().GetHost() == "" {
				c.errorf(p+".host", "destination host is required")
			}
		}
	}
}

func (c *checker) workload(s *WorkloadSpec) {
	if s.Command == "" {
		c.errorf("spec.command", "command is required")
	}
	if s.ServiceAccount != "" && !IsDNS1123Subdomain(s.ServiceAccount) {
		c.errorf("spec.serviceAccount", "invalid service account %q: must be a DNS-1123 subdomain", s.ServiceAccount)
	}
	if s.Service != "" && !IsDNS1123Label(s.Service) {
		c.errorf("spec.service", "invalid service name %q: must be a DNS-1123 label", s.Service)
	}
	if len(s.Ports) == 0 {
		c.errorf("spec.ports", "at least one port is required")
	}
	if s.Address != "" {
		if a, err := netip.ParseAddr(s.Address); err != nil || a.Zone() != "" {
			c.errorf("spec.address", "address %q is not an IP address", s.Address)
		} else if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() {
			c.errorf("spec.address", "address %q must be a unicast address a peer can reach (not loopback, unspecified, multicast or link-local)", s.Address)
		}
	}
	names, numbers := map[string]bool{}, map[uint32]bool{}
	for i, port := range s.Ports {
		p := fmt.Sprintf("spec.ports[%d]", i)
		c.port(p+".number", port.Number)
		if numbers[port.Number] {
			c.errorf(p+".number", "port %d already defined", port.Number)
		}
		numbers[port.Number] = true
		if port.Name != "" {
			if !validPortName(port.Name) {
				c.errorf(p+".name", "invalid port name %q", port.Name)
			} else if names[port.Name] {
				c.errorf(p+".name", "port name %q already defined", port.Name)
			}
			names[port.Name] = true
		}
		if port.Protocol != "" && !ValidProtocol(port.Protocol) {
			c.errorf(p+".protocol", "unsupported protocol %q", port.Protocol)
		}
	}
	if s.Readiness != nil {
		if s.Readiness.HTTPGet == nil {
			c.errorf("spec.readiness", "readiness needs httpGet")
		} else if !strings.HasPrefix(s.Readiness.HTTPGet.Path, "/") {
			c.errorf("spec.readiness.httpGet.path", "path must start with '/'")
		}
	}
}
