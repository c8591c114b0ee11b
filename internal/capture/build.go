package capture

import "strconv"

// Build compiles c into the IPv4 rules istio-iptables writes for the same
// flags, in the same order (tools/istio-iptables/pkg/capture/run.go).
func Build(c Config) (*RuleSet, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(c.ProxyGIDs) == 0 {
		c.ProxyGIDs = c.ProxyUIDs
	}
	b := &builder{}
	loopback := c.HostLoopback.String()
	tunnel := portStr(c.InboundTunnelPort)
	mark := strconv.FormatUint(uint64(c.TProxyMark), 10)
	tproxy := c.Mode == TProxy

	redirectDNS := c.RedirectDNS && (c.CaptureAllDNS || len(c.DNSServers) > 0)

	// Interfaces neither captured in nor out.
	for _, i := range c.ExcludeInterfaces {
		b.add("nat", "PREROUTING", "-i", i, "-j", "RETURN")
		b.add("nat", "OUTPUT", "-o", i, "-j", "RETURN")
	}
	if tproxy {
		for _, i := range c.ExcludeInterfaces {
			b.add("mangle", "PREROUTING", "-i", i, "-j", "RETURN")
			b.add("mangle", "OUTPUT", "-o", i, "-j", "RETURN")
		}
	}
	// Virtual interfaces (VMs in the pod) are not inbound.
	for _, i := range c.RerouteVirtualInterfaces {
		b.insert("nat", "PREROUTING", 1, "-i", i, "-j", "RETURN")
	}
	if c.DropInvalid {
		b.add("mangle", "PREROUTING", "-m", "conntrack", "--ctstate", "INVALID", "-j", ChainDrop)
		b.add("mangle", ChainDrop, "-j", "DROP")
	}

	b.add("nat", ChainInbound, "-p", "tcp", "--dport", tunnel, "-j", "RETURN")
	b.add("nat", ChainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", portStr(c.ProxyPort))
	b.add("nat", ChainInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", portStr(c.InboundCapturePort))

	inbound(b, c, mark, loopback)

	// Outbound.
	b.add("nat", "OUTPUT", "-j", ChainOutput)
	for _, p := range c.OutboundPortsExclude {
		b.add("nat", ChainOutput, "-p", "tcp", "--dport", portStr(p), "-j", "RETURN")
		b.add("nat", ChainOutput, "-p", "udp", "--dport", portStr(p), "-j", "RETURN")
	}
	// 127.0.0.6 is the source the proxy binds to when it passes inbound
	// traffic to the app.
	b.add("nat", ChainOutput, "-o", "lo", "-s", "127.0.0.6/32", "-j", "RETURN")
	loopbackIncluded := c.OutboundRanges.hasLoopback()
	for _, uid := range c.ProxyUIDs {
		// The app calling itself through its service: app -> proxy
		// (outbound) -> proxy (inbound) -> app, over lo.
		if redirectDNS {
			b.add("nat", ChainOutput, "-o", "lo", "!", "-d", loopback, "-p", "tcp", "-m", "multiport",
				"!", "--dports", "53,"+tunnel, "-m", "owner", "--uid-owner", uid, "-j", ChainInRedirect)
		} else {
			b.add("nat", ChainOutput, "-o", "lo", "!", "-d", loopback, "-p", "tcp", "!", "--dport", tunnel,
				"-m", "owner", "--uid-owner", uid, "-j", ChainInRedirect)
		}
		// The app calling itself by its own address stays on lo.
		if !loopbackIncluded {
			if redirectDNS {
				b.add("nat", ChainOutput, "-o", "lo", "-p", "tcp", "!", "--dport", "53",
					"-m", "owner", "!", "--uid-owner", uid, "-j", "RETURN")
			} else {
				b.add("nat", ChainOutput, "-o", "lo", "-m", "owner", "!", "--uid-owner", uid, "-j", "RETURN")
			}
		}
		// The proxy's own traffic is never captured again.
		b.add("nat", ChainOutput, "-m", "owner", "--uid-owner", uid, "-j", "RETURN")
	}
	for _, gid := range c.ProxyGIDs {
		b.add("nat", ChainOutput, "-o", "lo", "!", "-d", loopback, "-p", "tcp", "!", "--dport", tunnel,
			"-m", "owner", "--gid-owner", gid, "-j", ChainInRedirect)
		if !loopbackIncluded {
			if redirectDNS {
				b.add("nat", ChainOutput, "-o", "lo", "-p", "tcp", "!", "--dport", "53",
					"-m", "owner", "!", "--gid-owner", gid, "-j", "RETURN")
			} else {
				b.add("nat", ChainOutput, "-o", "lo", "-m", "owner", "!", "--gid-owner", gid, "-j", "RETURN")
			}
		}
		b.add("nat", ChainOutput, "-m", "owner", "--gid-owner", gid, "-j", "RETURN")
	}
	ownerGroups(b, c.OwnerGroupsInclude, c.OwnerGroupsExclude)
	if redirectDNS {
		dns(b, c)
	}
	// Calls to localhost are the app's own business.
	b.add("nat", ChainOutput, "-d", loopback, "-j", "RETURN")
	for _, p := range c.OutboundRangesExclude {
		if p.Addr().Is4() {
			b.add("nat", ChainOutput, "-d", p.String(), "-j", "RETURN")
		}
	}
	for _, p := range c.OutboundPortsInclude {
		b.add("nat", ChainOutput, "-p", "tcp", "--dport", portStr(p), "-j", ChainRedirect)
	}
	if c.OutboundRanges.All {
		b.add("nat", ChainOutput, "-j", ChainRedirect)
		for _, i := range c.RerouteVirtualInterfaces {
			b.insert("nat", "PREROUTING", 1, "-i", i, "-j", ChainRedirect)
		}
	} else {
		for _, p := range c.OutboundRanges.CIDRs {
			for _, i := range c.RerouteVirtualInterfaces {
				b.insert("nat", "PREROUTING", 1, "-i", i, "-d", p.String(), "-j", ChainRedirect)
			}
			b.add("nat", ChainOutput, "-d", p.String(), "-j", ChainRedirect)
		}
	}
	set := &RuleSet{}
	if tproxy {
		tproxyMarks(b, c, mark, loopback)
		if len(c.InboundPorts.Ports) > 0 || c.InboundPorts.All {
			set.TProxyRoute = &TProxyRoute{Mark: c.TProxyMark, Table: c.TProxyRouteTable}
		}
	}
	set.Rules = b.rules
	return set, nil
}

// inbound writes the PREROUTING capture (Istio's handleInboundPortsInclude).
func inbound(b *builder, c Config, mark, loopback string) {
	if !c.InboundPorts.All && len(c.InboundPorts.Ports) == 0 {
		return
	}
	table := "nat"
	if c.Mode == TProxy {
		b.add("mangle", ChainDivert, "-j", "MARK", "--set-mark", mark)
		b.add("mangle", ChainDivert, "-j", "ACCEPT")
		b.add("mangle", ChainTProxy, "!", "-d", loopback, "-p", "tcp", "-j", "TPROXY",
			"--tproxy-mark", mark+"/0xffffffff", "--on-port", portStr(c.InboundCapturePort))
		table = "mangle"
	}
	b.add(table, "PREROUTING", "-p", "tcp", "-j", ChainInbound)
	if c.InboundPorts.All {
		for _, p := range c.InboundPortsExclude {
			b.add(table, ChainInbound, "-p", "tcp", "--dport", portStr(p), "-j", "RETURN")
		}
		if c.Mode == TProxy {
			b.add("mangle", ChainInbound, "-p", "tcp", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", ChainDivert)
			b.add("mangle", ChainInbound, "-p", "tcp", "-j", ChainTProxy)
		} else {
			b.add("nat", ChainInbound, "-p", "tcp", "-j", ChainInRedirect)
		}
		return
	}
	for _, p := range c.InboundPorts.Ports {
		if c.Mode == TProxy {
			b.add("mangle", ChainInbound, "-p", "tcp", "--dport", portStr(p), "-m", "conntrack",
				"--ctstate", "RELATED,ESTABLISHED", "-j", ChainDivert)
			b.add("mangle", ChainInbound, "-p", "tcp", "--dport", portStr(p), "-j", ChainTProxy)
		} else {
			b.add("nat", ChainInbound, "-p", "tcp", "--dport", portStr(p), "-j", ChainInRedirect)
		}
	}
}

// ownerGroups is Istio's handleCaptureByOwnerGroup. An empty include list
// means every group, as Istio's default "*" does.
func ownerGroups(b *builder, include, exclude string) {
	if include == "*" || include == "" {
		for _, g := range split(exclude) {
			b.add("nat", ChainOutput, "-m", "owner", "--gid-owner", g, "-j", "RETURN")
		}
		return
	}
	var args []string
	for _, g := range split(include) {
		args = append(args, "-m", "owner", "!", "--gid-owner", g)
	}
	b.add("nat", ChainOutput, append(args, "-j", "RETURN")...)
}

// dns sends the app's DNS to the sidecar's resolver and splits the UDP
// conntrack zones (Istio's SetupDNSRedir and addDNSConntrackZones).
func dns(b *builder, c Config) {
	b.add("raw", "OUTPUT", "-j", ChainOutputDNS)
	b.add("nat", ChainOutput, "-j", ChainOutputDNS)
	if c.CaptureAllDNS {
		b.add("nat", ChainOutputDNS, "-p", "tcp", "--dport", "53", "-j", "REDIRECT", "--to-ports", dnsPort)
		b.add("nat", ChainOutputDNS, "-p", "udp", "--dport", "53", "-j", "REDIRECT", "--to-port", dnsPort)
	} else {
		for _, s := range c.DNSServers {
			b.add("nat", ChainOutputDNS, "-p", "tcp", "--dport", "53", "-d", s.String()+"/32", "-j", "REDIRECT", "--to-ports", dnsPort)
		}
		for _, s := range c.DNSServers {
			b.add("nat", ChainOutputDNS, "-p", "udp", "--dport", "53", "-d", s.String()+"/32", "-j", "REDIRECT", "--to-port", dnsPort)
		}
	}
	for _, ids := range []struct {
		flag string
		ids  []string
	}{{"--uid-owner", c.ProxyUIDs}, {"--gid-owner", c.ProxyGIDs}} {
		for _, id := range ids.ids {
			b.add("raw", ChainOutputDNS, "-p", "udp", "--dport", "53", "-m", "owner", ids.flag, id, "-j", "CT", "--zone", "1")
			b.add("raw", ChainOutputDNS, "-p", "udp", "--sport", dnsPort, "-m", "owner", ids.flag, id, "-j", "CT", "--zone", "2")
		}
	}
	b.add("raw", "PREROUTING", "-j", ChainInbound)
	if c.CaptureAllDNS {
		b.add("raw", ChainOutputDNS, "-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2")
		b.add("raw", ChainInbound, "-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1")
		return
	}
	for _, s := range c.DNSServers {
		b.add("raw", ChainOutputDNS, "-p", "udp", "--dport", "53", "-d", s.String()+"/32", "-j", "CT", "--zone", "2")
		b.add("raw", ChainInbound, "-p", "udp", "--sport", "53", "-s", s.String()+"/32", "-j", "CT", "--zone", "1")
	}
}

// tproxyMarks keeps TPROXY from looping (the tail of Istio's Run).
func tproxyMarks(b *builder, c Config, mark, loopback string) {
	b.add("mangle", "PREROUTING", "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "CONNMARK", "--save-mark")
	b.add("mangle", "OUTPUT", "-p", "tcp", "-o", "lo", "-m", "mark", "--mark", mark, "-j", "RETURN")
	for _, uid := range c.ProxyUIDs {
		b.add("mangle", "OUTPUT", "!", "-d", loopback, "-p", "tcp", "-o", "lo", "-m", "owner", "--uid-owner", uid,
			"-j", "MARK", "--set-mark", outboundMark)
	}
	for _, gid := range c.ProxyGIDs {
		b.add("mangle", "OUTPUT", "!", "-d", loopback, "-p", "tcp", "-o", "lo", "-m", "owner", "--gid-owner", gid,
			"-j", "MARK", "--set-mark", outboundMark)
	}
	b.add("mangle", "OUTPUT", "-p", "tcp", "-m", "connmark", "--mark", mark, "-j", "CONNMARK", "--restore-mark")
	b.insert("mangle", ChainInbound, 1, "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "RETURN")
	b.insert("mangle", ChainInbound, 2, "-p", "tcp", "-s", "127.0.0.6/32", "-i", "lo", "-j", "RETURN")
	b.insert("mangle", ChainInbound, 3, "-p", "tcp", "-i", "lo", "-m", "mark", "!", "--mark", outboundMark, "-j", "RETURN")
}
