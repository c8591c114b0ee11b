package proxy

import (
	"net/netip"
	"strconv"
	"strings"
)

// addrIndex maps captured destinations to mesh services: a service's
// virtual IPs (its ServiceEntry addresses, CIDRs included) and its
// endpoints' own addresses, each at a service port.
type addrIndex struct {
	vips      map[netip.AddrPort]*Upstream
	cidrs     []cidrUpstream
	endpoints map[netip.AddrPort]*Upstream
	// names are the DNS names the sidecar answers for, lower case,
	// without the trailing dot, with their addresses.
	names map[string][]netip.Addr
}

type cidrUpstream struct {
	prefix netip.Prefix
	u      *Upstream
}

func newAddrIndex() addrIndex {
	return addrIndex{vips: map[netip.AddrPort]*Upstream{}, endpoints: map[netip.AddrPort]*Upstream{}, names: map[string][]netip.Addr{}}
}

// add indexes one port of a service whose ServiceEntry has addresses
// and answers to hosts (its short name only when it is in the proxy's
// namespace, as Kubernetes' search path makes it).
func (x *addrIndex) add(u *Upstream, addresses, hosts []string, short bool) {
	var ips []netip.Addr
	for _, a := range addresses {
		if p, err := netip.ParsePrefix(a); err == nil {
			if p.IsSingleIP() {
				ips = append(ips, p.Addr())
				x.addVIP(netip.AddrPortFrom(p.Addr(), uint16(u.Port)), u)
			} else {
				x.cidrs = append(x.cidrs, cidrUpstream{prefix: p.Masked(), u: u})
			}
			continue
		}
		if ip, err := netip.ParseAddr(a); err == nil {
			ips = append(ips, ip.Unmap())
			x.addVIP(netip.AddrPortFrom(ip.Unmap(), uint16(u.Port)), u)
		}
	}
	for _, ep := range u.Endpoints {
		if ap, err := netip.ParseAddrPort(ep.Addr); err == nil {
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			if _, dup := x.endpoints[ap]; !dup {
				x.endpoints[ap] = u
			}
		}
	}
	if len(ips) == 0 {
		return
	}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if strings.HasPrefix(h, "*") || (!strings.Contains(h, ".") && !short) {
			continue
		}
		if _, dup := x.names[h]; !dup {
			x.names[h] = ips
		}
	}
}

func (x *addrIndex) addVIP(ap netip.AddrPort, u *Upstream) {
	if _, dup := x.vips[ap]; !dup {
		x.vips[ap] = u
	}
}

// LookupAddr finds the service port a captured connection to dst is
// for: by virtual IP first, then by a CIDR of a ServiceEntry, then by an
// endpoint's own address. pin is that endpoint's address when the app
// named an endpoint rather than the service; "" otherwise.
func (c *Compiled) LookupAddr(dst netip.AddrPort) (u *Upstream, pin string) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if u := c.addrs.vips[dst]; u != nil {
		return u, ""
	}
	var best *cidrUpstream
	for i := range c.addrs.cidrs {
		cu := &c.addrs.cidrs[i]
		if cu.u.Port == uint32(dst.Port()) && cu.prefix.Contains(dst.Addr()) && (best == nil || cu.prefix.Bits() > best.prefix.Bits()) {
			best = cu
		}
	}
	if best != nil {
		return best.u, ""
	}
	if u := c.addrs.endpoints[dst]; u != nil {
		return u, dst.String()
	}
	return nil, ""
}

// LookupHost returns the addresses of a mesh name (lower case, no
// trailing dot), for the DNS proxy.
func (c *Compiled) LookupHost(name string) ([]netip.Addr, bool) {
	ips, ok := c.addrs.names[name]
	return ips, ok
}

// LookupWildcard finds the service port a host name (an HTTP Host, a TLS
// SNI) is for at port: the host itself, else the most specific wildcard
// ServiceEntry host (*.example.com) that covers it.
func (c *Compiled) LookupWildcard(host string, port uint32) *Upstream {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return nil
	}
	p := ":" + strconv.FormatUint(uint64(port), 10)
	if u := c.hosts[host+p]; u != nil {
		return u
	}
	for rest := host; ; {
		_, after, ok := strings.Cut(rest, ".")
		if !ok {
			break
		}
		if u := c.hosts["*."+after+p]; u != nil {
			return u
		}
		rest = after
	}
	return c.hosts["*"+p]
}
