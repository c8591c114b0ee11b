package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Mode is how inbound connections reach the proxy (istio-iptables -m).
type Mode string

// The inbound interception modes Istio supports.
const (
	Redirect Mode = "REDIRECT"
	TProxy   Mode = "TPROXY"
)

// Ports is a list of TCP ports, or every port (istio-iptables' "*").
type Ports struct {
	All   bool
	Ports []uint16
}

// ParsePorts reads Istio's comma-separated port list: "" (none), "*"
// (all), or ports 1-65535. Empty elements are skipped, as Istio does.
func ParsePorts(s string) (Ports, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return Ports{All: true}, nil
	}
	var p Ports
	for _, e := range split(s) {
		n, err := strconv.ParseUint(e, 10, 16)
		if err != nil || n == 0 {
			return Ports{}, fmt.Errorf("port %q: want 1-65535", e)
		}
		p.Ports = append(p.Ports, uint16(n))
	}
	return p, nil
}

func (p Ports) String() string {
	if p.All {
		return "*"
	}
	s := make([]string, len(p.Ports))
	for i, n := range p.Ports {
		s[i] = strconv.Itoa(int(n))
	}
	return strings.Join(s, ",")
}

// Ranges is a list of IPv4 CIDRs, or every address ("*").
type Ranges struct {
	All   bool
	CIDRs []netip.Prefix
}

// ParseRanges reads Istio's comma-separated CIDR list: "", "*" or CIDRs.
// IPv6 ranges are accepted and left out, as the IPv4 rules leave them.
func ParseRanges(s string) (Ranges, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return Ranges{All: true}, nil
	}
	var r Ranges
	for _, e := range split(s) {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return Ranges{}, fmt.Errorf("range %q: %w", e, err)
		}
		if p.Addr().Is4() {
			r.CIDRs = append(r.CIDRs, p)
		}
	}
	return r, nil
}

func (r Ranges) String() string {
	if r.All {
		return "*"
	}
	s := make([]string, len(r.CIDRs))
	for i, p := range r.CIDRs {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (r Ranges) hasLoopback() bool {
	for _, p := range r.CIDRs {
		if p.Addr().IsLoopback() {
			return true
		}
	}
	return false
}

// Config mirrors istio-iptables' flags; each field names the flag it
// stands for. [Default] holds the values Istio's sidecar injector passes.
type Config struct {
	ProxyPort                uint16         // -p, envoy-port: outbound capture
	InboundCapturePort       uint16         // -z, inbound-capture-port
	InboundTunnelPort        uint16         // -e, inbound-tunnel-port (HBONE, never captured)
	ProxyUIDs                []string       // -u, proxy-uid: comma-separated in Istio
	ProxyGIDs                []string       // -g, proxy-gid: defaults to the uids
	Mode                     Mode           // -m, istio-inbound-interception-mode
	InboundPorts             Ports          // -b, istio-inbound-ports
	InboundPortsExclude      []uint16       // -d, istio-local-exclude-ports (only with -b "*")
	OutboundRanges           Ranges         // -i, istio-service-cidr
	OutboundRangesExclude    []netip.Prefix // -x, istio-service-exclude-cidr
	OutboundPortsInclude     []uint16       // -q, istio-outbound-ports
	OutboundPortsExclude     []uint16       // -o, istio-local-outbound-ports-exclude
	ExcludeInterfaces        []string       // -c, istio-exclude-interfaces
	RerouteVirtualInterfaces []string       // -k, kube-virt-interfaces
	TProxyMark               uint32         // -t, istio-inbound-tproxy-mark
	TProxyRouteTable         int            // -r, istio-inbound-tproxy-route-table
	RedirectDNS              bool           // --redirect-dns (env ISTIO_META_DNS_CAPTURE)
	CaptureAllDNS            bool           // --capture-all-dns
	DNSServers               []netip.Addr   // resolv.conf servers, used when RedirectDNS without CaptureAllDNS
	DropInvalid              bool           // --drop-invalid (env INVALID_DROP)
	// HostLoopback is ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR.
	HostLoopback netip.Prefix
	// OwnerGroupsInclude and OwnerGroupsExclude are
	// ISTIO_OUTBOUND_OWNER_GROUPS ("*" by default) and
	// ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE.
	OwnerGroupsInclude string
	OwnerGroupsExclude string
}

// Default is the configuration Istio's injected init container runs with:
// `istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*'
// -d 15090,15021,15020` (manifests/charts/istio-control/istio-discovery/
// files/injection-template.yaml), with istio-iptables' own defaults for the
// rest.
func Default() Config {
	return Config{
		ProxyPort:           15001,
		InboundCapturePort:  15006,
		InboundTunnelPort:   15008,
		ProxyUIDs:           []string{"1337"},
		ProxyGIDs:           []string{"1337"},
		Mode:                Redirect,
		InboundPorts:        Ports{All: true},
		InboundPortsExclude: []uint16{15090, 15021, 15020},
		OutboundRanges:      Ranges{All: true},
		TProxyMark:          1337,
		TProxyRouteTable:    133,
		HostLoopback:        netip.MustParsePrefix("127.0.0.1/32"),
		OwnerGroupsInclude:  "*",
	}
}

// Validate reports every problem in c, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	for _, p := range []struct {
		flag string
		v    uint16
	}{{"-p", c.ProxyPort}, {"-z", c.InboundCapturePort}, {"-e", c.InboundTunnelPort}} {
		if p.v == 0 {
			errs = append(errs, fmt.Errorf("capture: %s: port must be 1-65535", p.flag))
		}
	}
	if c.Mode != Redirect && c.Mode != TProxy {
		errs = append(errs, fmt.Errorf("capture: -m %q: want REDIRECT or TPROXY", c.Mode))
	}
	if len(c.ProxyUIDs) == 0 {
		errs = append(errs, errors.New("capture: -u: the proxy's uid is required"))
	}
	for _, id := range append(append([]string{}, c.ProxyUIDs...), c.ProxyGIDs...) {
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			errs = append(errs, fmt.Errorf("capture: -u/-g %q: want a numeric id", id))
		}
	}
	for _, n := range append(append([]string{}, c.ExcludeInterfaces...), c.RerouteVirtualInterfaces...) {
		if !validInterface(n) {
			errs = append(errs, fmt.Errorf("capture: -c/-k %q: not an interface name", n))
		}
	}
	if !c.HostLoopback.IsValid() || !c.HostLoopback.Addr().Is4() || !c.HostLoopback.Addr().IsLoopback() {
		errs = append(errs, fmt.Errorf("capture: ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR %q: want an IPv4 loopback range", c.HostLoopback))
	}
	for _, a := range c.DNSServers {
		if !a.Is4() {
			errs = append(errs, fmt.Errorf("capture: DNS server %s: IPv4 only", a))
		}
	}
	for _, g := range append(split(c.OwnerGroupsInclude), split(c.OwnerGroupsExclude)...) {
		if g != "*" && strings.ContainsAny(g, " \t\n") {
			errs = append(errs, fmt.Errorf("capture: owner group %q: no spaces", g))
		}
	}
	return errors.Join(errs...)
}

func validInterface(n string) bool {
	if n == "" || len(n) > 15 {
		return false
	}
	for _, r := range n {
		if r == '/' || r == ' ' || r == ':' || r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// split is Istio's config.Split: comma-separated, empty elements dropped.
func split(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
