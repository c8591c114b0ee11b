package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// attr names the request attribute a field reads.
type attr uint8

const (
	attrPrincipal attr = iota
	attrNamespace
	attrServiceAccount
	attrTrustDomain
	attrSNI
	attrSourceIP
	attrRemoteIP
	attrDestIP
	attrDestPort
	attrRequestPrincipal
	attrAudiences
	attrPresenter
	attrClaim
	attrHeader
	attrHost
	attrMethod
	attrPath
)

// httpOnly reports whether the attribute exists only for HTTP requests.
func (a attr) httpOnly() bool { return a >= attrRequestPrincipal }

// policy is one compiled AuthorizationPolicy.
type policy struct {
	ref      PolicyRef // Rule is -1
	provider string
	denyLike bool // DENY, AUDIT, CUSTOM: widen rather than narrow on doubt
	rules    []*rule
}

// rule is one compiled Rule: some source AND some operation AND every
// condition.
type rule struct {
	http bool       // uses an HTTP-only field
	from [][]*field // OR of sources; each an AND of fields
	to   [][]*field // OR of operations; each an AND of fields
	when []*field   // AND
}

// field is one compiled field of a source, operation or condition, with
// its values and notValues.
type field struct {
	name      string // "from[0].source.principals", for Explain
	attr      attr
	deny      bool // compiled for a DENY-like policy
	foldVals  bool // compare values case-insensitively
	foldNots  bool // compare notValues case-insensitively
	header    string
	claim     []string
	values    []strMatch
	notValues []strMatch
	reqP      []issSub
	notReqP   []issSub
	sas       []saRef
	notSAs    []saRef
	cidrs     []netip.Prefix
	notCIDRs  []netip.Prefix
	ports     []uint32
	notPorts  []uint32
	raw       []string // values as written, for Explain
	rawNot    []string
}

type issSub struct{ iss, sub strMatch }

type saRef struct{ ns, sa string }

func compilePolicy(p *Policy, opts Options) (*policy, error) {
	spec := p.Spec
	cp := &policy{
		ref:      PolicyRef{Namespace: p.Namespace, Name: p.Name, Action: spec.GetAction(), Rule: -1},
		denyLike: spec.GetAction() != ActionAllow,
	}
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("authz: compile %s/%s: "+format, append([]any{p.Namespace, p.Name}, a...)...))
	}
	switch spec.GetAction() {
	case ActionAllow, ActionDeny, ActionAudit:
		if spec.GetProvider() != nil {
			fail("provider is only allowed with action CUSTOM")
		}
	case ActionCustom:
		cp.provider = spec.GetProvider().GetName()
		if cp.provider == "" {
			fail("action CUSTOM needs provider.name")
		}
	default:
		fail("unknown action %v", spec.GetAction())
	}
	c := compiler{policyNS: p.Namespace, deny: cp.denyLike, opts: opts}
	for i, r := range spec.GetRules() {
		cr, err := c.rule(r)
		if err != nil {
			fail("rules[%d]: %w", i, err)
			continue
		}
		cp.rules = append(cp.rules, cr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cp, nil
}

type compiler struct {
	policyNS string
	deny     bool
	opts     Options
	errs     []error
}

func (c *compiler) errorf(format string, a ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, a...))
}

func (c *compiler) rule(r *securityv1beta1.Rule) (*rule, error) {
	c.errs = nil
	out := &rule{}
	if r == nil {
		// A nil rule is the empty rule `{}`: it matches everything.
		out.from = [][]*field{nil}
		out.to = [][]*field{nil}
		return out, nil
	}
	for i, f := range r.GetFrom() {
		out.from = append(out.from, c.source(fmt.Sprintf("from[%d].source", i), f.GetSource()))
	}
	if len(out.from) == 0 {
		out.from = [][]*field{nil}
	}
	for i, t := range r.GetTo() {
		out.to = append(out.to, c.operation(fmt.Sprintf("to[%d].operation", i), t.GetOperation()))
	}
	if len(out.to) == 0 {
		out.to = [][]*field{nil}
	}
	for i, cond := range r.GetWhen() {
		if f := c.condition(fmt.Sprintf("when[%d]", i), cond); f != nil {
			out.when = append(out.when, f)
		}
	}
	sets := make([][]*field, 0, len(out.from)+len(out.to)+1)
	sets = append(append(append(sets, out.from...), out.to...), out.when)
	for _, set := range sets {
		for _, f := range set {
			if f.attr.httpOnly() {
				out.http = true
			}
		}
	}
	return out, errors.Join(c.errs...)
}

func (c *compiler) source(path string, s *securityv1beta1.Source) []*field {
	if s == nil {
		return nil
	}
	var fs []*field
	add := func(f *field) {
		if f != nil {
			fs = append(fs, f)
		}
	}
	if len(s.GetServiceAccounts())+len(s.GetNotServiceAccounts()) > 0 &&
		len(s.GetPrincipals())+len(s.GetNotPrincipals())+len(s.GetNamespaces())+len(s.GetNotNamespaces()) > 0 {
		c.errorf("%s: serviceAccounts cannot be set with principals or namespaces", path)
	}
	add(c.strings(path+".principals", attrPrincipal, s.GetPrincipals(), s.GetNotPrincipals()))
	add(c.requestPrincipals(path+".requestPrincipals", s.GetRequestPrincipals(), s.GetNotRequestPrincipals()))
	add(c.strings(path+".namespaces", attrNamespace, s.GetNamespaces(), s.GetNotNamespaces()))
	add(c.serviceAccounts(path+".serviceAccounts", s.GetServiceAccounts(), s.GetNotServiceAccounts()))
	add(c.strings(path+".trustDomains", attrTrustDomain, s.GetTrustDomains(), s.GetNotTrustDomains()))
	add(c.ips(path+".ipBlocks", attrSourceIP, s.GetIpBlocks(), s.GetNotIpBlocks()))
	add(c.ips(path+".remoteIpBlocks", attrRemoteIP, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks()))
	return fs
}

func (c *compiler) operation(path string, o *securityv1beta1.Operation) []*field {
	if o == nil {
		return nil
	}
	var fs []*field
	add := func(f *field) {
		if f != nil {
			fs = append(fs, f)
		}
	}
	add(c.strings(path+".hosts", attrHost, o.GetHosts(), o.GetNotHosts()))
	add(c.ports(path+".ports", o.GetPorts(), o.GetNotPorts()))
	add(c.strings(path+".methods", attrMethod, o.GetMethods(), o.GetNotMethods()))
	add(c.strings(path+".paths", attrPath, o.GetPaths(), o.GetNotPaths()))
	return fs
}

func (c *compiler) condition(path string, cond *securityv1beta1.Condition) *field {
	key := cond.GetKey()
	vals, nots := cond.GetValues(), cond.GetNotValues()
	name := path + " " + key
	if len(vals) == 0 && len(nots) == 0 {
		c.errorf("%s: at least one of values or notValues must be set", name)
		return nil
	}
	switch {
	case key == "source.ip":
		return c.ips(name, attrSourceIP, vals, nots)
	case key == "remote.ip":
		return c.ips(name, attrRemoteIP, vals, nots)
	case key == "destination.ip":
		return c.ips(name, attrDestIP, vals, nots)
	case key == "destination.port":
		return c.ports(name, vals, nots)
	case key == "source.namespace":
		return c.strings(name, attrNamespace, vals, nots)
	case key == "source.principal":
		return c.strings(name, attrPrincipal, vals, nots)
	case key == "connection.sni":
		return c.strings(name, attrSNI, vals, nots)
	case key == "request.auth.principal":
		return c.requestPrincipals(name, vals, nots)
	case key == "request.auth.audiences":
		return c.strings(name, attrAudiences, vals, nots)
	case key == "request.auth.presenter":
		return c.strings(name, attrPresenter, vals, nots)
	case strings.HasPrefix(key, "request.auth.claims["):
		claim, err := nestedBrackets(strings.TrimPrefix(key, "request.auth.claims"))
		if err != nil {
			c.errorf("%s: %w", name, err)
			return nil
		}
		f := c.strings(name, attrClaim, vals, nots)
		f.claim = claim
		return f
	case strings.HasPrefix(key, "request.headers["):
		h, err := nestedBrackets(strings.TrimPrefix(key, "request.headers"))
		if err != nil || len(h) != 1 || h[0] == "" {
			c.errorf("%s: want request.headers[<name>]", name)
			return nil
		}
		f := c.strings(name, attrHeader, vals, nots)
		f.header = h[0]
		if !strings.HasPrefix(h[0], ":") {
			f.header = textproto.CanonicalMIMEHeaderKey(h[0])
		}
		return f
	case strings.HasPrefix(key, "experimental.envoy.filters."):
		c.errorf("%s: experimental.envoy.filters.* attributes are not supported", name)
		return nil
	default:
		c.errorf("%s: unknown attribute", name)
		return nil
	}
}

// nestedBrackets parses "[a]" or "[a][b]..." into its names.
func nestedBrackets(s string) ([]string, error) {
	var out []string
	for s != "" {
		if s[0] != '[' {
			return nil, fmt.Errorf("want [<name>], got %q", s)
		}
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return nil, fmt.Errorf("unclosed bracket in %q", s)
		}
		name := s[1:end]
		if name == "" || strings.ContainsAny(name, "[") {
			return nil, fmt.Errorf("bad name %q", name)
		}
		out = append(out, name)
		s = s[end+1:]
	}
	if len(out) == 0 {
		return nil, errors.New("want [<name>]")
	}
	return out, nil
}

func (c *compiler) newField(name string, a attr, vals, nots []string) *field {
	return &field{name: name, attr: a, deny: c.deny, raw: vals, rawNot: nots}
}

func (c *compiler) strings(name string, a attr, vals, nots []string) *field {
	if len(vals) == 0 && len(nots) == 0 {
		return nil
	}
	f := c.newField(name, a, vals, nots)
	switch a {
	case attrHost:
		// Host names are case-insensitive (RFC 4343, CVE-2021-39155):
		// every spelling is the same host, on both sides.
		f.foldVals, f.foldNots = true, true
	case attrMethod:
		// A method's case is a spelling the attacker picks (HTTP/2 does
		// not reject "get"; GHSA-w44g-8m76-8gc5). Fold on the side where
		// a match narrows access, compare exactly on the other: a DENY
		// catches "delete" with methods [DELETE] and still catches "get"
		// with notMethods [GET]; an ALLOW admits only the exact method
		// and excludes "delete" with notMethods [DELETE].
		f.foldVals, f.foldNots = c.deny, !c.deny
	case attrPath:
		// Istio compares paths case-sensitively, but many backends do not
		// (ASP.NET, IIS, Spring with a case-insensitive matcher, a
		// case-insensitive file system), and a DENY on /admin* must refuse
		// /ADMIN too. The same rule as methods: DENY-like paths fold and
		// notPaths are exact; ALLOW paths are exact, as in Istio, and ALLOW
		// notPaths fold. Folding only ever denies more, so there is no
		// switch to turn it off.
		f.foldVals, f.foldNots = c.deny, !c.deny
	}
	compile := func(vs []string) []strMatch {
		out := make([]strMatch, 0, len(vs))
		for _, v := range vs {
			m, err := c.strMatch(a, v)
			if err != nil {
				c.errorf("%s: %q: %w", name, v, err)
				continue
			}
			out = append(out, m)
		}
		return out
	}
	f.values, f.notValues = compile(vals), compile(nots)
	return f
}

func (c *compiler) strMatch(a attr, v string) (strMatch, error) {
	switch a {
	case attrHeader:
		// Envoy's header matcher: "*" means the header is present.
		return parseStrMatch(v, true), nil
	case attrHost:
		if v == "" {
			return strMatch{}, errors.New("empty host")
		}
		return parseStrMatch(v, true), nil
	case attrPath:
		if v == "" {
			return strMatch{}, errors.New("empty path")
		}
		if containsTemplate(v) {
			return parseTemplate(v)
		}
		if strings.ContainsAny(v, "{}") {
			return strMatch{}, errors.New("{ and } are only allowed in the path templates {*} and {**}")
		}
		return parseStrMatch(normalizeEscapes(v), false), nil
	case attrMethod:
		if v == "" {
			return strMatch{}, errors.New("empty method")
		}
	}
	return parseStrMatch(v, false), nil
}
