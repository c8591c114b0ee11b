package authz

import (
	"net/netip"
	"strconv"
	"strings"
)

func (c *compiler) requestPrincipals(name string, vals, nots []string) *field {
	if len(vals) == 0 && len(nots) == 0 {
		return nil
	}
	f := c.newField(name, attrRequestPrincipal, vals, nots)
	f.reqP, f.notReqP = compileIssSub(vals), compileIssSub(nots)
	return f
}

// compileIssSub splits each "<iss>/<sub>" value at its last '/' and
// matches issuer and subject separately, as Istio does, so that a wildcard
// never spans the separator.
func compileIssSub(vs []string) []issSub {
	out := make([]issSub, 0, len(vs))
	for _, v := range vs {
		idx := strings.LastIndexByte(v, '/')
		found := idx >= 0
		iss, sub := v, ""
		if found {
			iss, sub = v[:idx], v[idx+1:]
		}
		nonEmpty := strMatch{kind: kindNonEmpty}
		var m issSub
		switch {
		case v == "*":
			m = issSub{nonEmpty, nonEmpty}
		case strings.HasPrefix(v, "*"):
			if found {
				m.iss = nonEmpty
				if iss != "*" {
					m.iss = strMatch{kind: kindSuffix, lit: iss[1:]}
				}
				m.sub = strMatch{kind: kindExact, lit: sub}
			} else {
				m = issSub{nonEmpty, strMatch{kind: kindSuffix, lit: v[1:]}}
			}
		case strings.HasSuffix(v, "*"):
			if found {
				m.iss = strMatch{kind: kindExact, lit: iss}
				m.sub = nonEmpty
				if sub != "*" {
					m.sub = strMatch{kind: kindPrefix, lit: sub[:len(sub)-1]}
				}
			} else {
				m = issSub{strMatch{kind: kindPrefix, lit: v[:len(v)-1]}, nonEmpty}
			}
		default:
			m = issSub{strMatch{kind: kindExact, lit: iss}, strMatch{kind: kindExact, lit: sub}}
		}
		out = append(out, m)
	}
	return out
}

func (c *compiler) serviceAccounts(name string, vals, nots []string) *field {
	if len(vals) == 0 && len(nots) == 0 {
		return nil
	}
	f := c.newField(name, attrServiceAccount, vals, nots)
	compile := func(vs []string) []saRef {
		out := make([]saRef, 0, len(vs))
		for _, v := range vs {
			ns, sa, ok := strings.Cut(v, "/")
			if !ok {
				ns, sa = c.policyNS, v
			}
			if ns == "" || sa == "" || strings.ContainsAny(sa, "/*") || strings.Contains(ns, "*") {
				c.errorf("%s: %q: want <namespace>/<serviceaccount> or <serviceaccount>, no wildcards", name, v)
				continue
			}
			out = append(out, saRef{ns: ns, sa: sa})
		}
		return out
	}
	f.sas, f.notSAs = compile(vals), compile(nots)
	return f
}

func (c *compiler) ips(name string, a attr, vals, nots []string) *field {
	if len(vals) == 0 && len(nots) == 0 {
		return nil
	}
	f := c.newField(name, a, vals, nots)
	compile := func(vs []string) []netip.Prefix {
		out := make([]netip.Prefix, 0, len(vs))
		for _, v := range vs {
			p, err := parseCIDR(v)
			if err != nil {
				c.errorf("%s: %q: %w", name, v, err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	f.cidrs, f.notCIDRs = compile(vals), compile(nots)
	return f
}

func parseCIDR(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), bitsUnmapped(p)).Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// bitsUnmapped converts a prefix length on an IPv4-mapped IPv6 address to
// its IPv4 length.
func bitsUnmapped(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		b := p.Bits() - 96
		if b < 0 {
			b = 0
		}
		return b
	}
	return p.Bits()
}

func (c *compiler) ports(name string, vals, nots []string) *field {
	if len(vals) == 0 && len(nots) == 0 {
		return nil
	}
	f := c.newField(name, attrDestPort, vals, nots)
	compile := func(vs []string) []uint32 {
		out := make([]uint32, 0, len(vs))
		for _, v := range vs {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n > 65535 {
				c.errorf("%s: %q: not a port number", name, v)
				continue
			}
			out = append(out, uint32(n))
		}
		return out
	}
	f.ports, f.notPorts = compile(vals), compile(nots)
	return f
}
