package authz

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

// refDecide is a slow, direct reading of the semantics in doc.go, written
// apart from the engine: it walks the Istio protos for every request. The
// fuzz test compares the engine against it.
func refDecide(pols []Policy, w config.WorkloadRef, r *Request) bool {
	var deny, allow []*securityv1beta1.AuthorizationPolicy
	for _, p := range pols {
		if !config.Applies(p.Namespace, p.Spec, w, config.DefaultRootNamespace) {
			continue
		}
		switch p.Spec.GetAction() {
		case securityv1beta1.AuthorizationPolicy_DENY:
			deny = append(deny, p.Spec)
		case securityv1beta1.AuthorizationPolicy_ALLOW:
			allow = append(allow, p.Spec)
		}
	}
	for _, p := range deny {
		for _, ru := range p.GetRules() {
			if refRule(ru, r, true) {
				return false
			}
		}
	}
	if len(allow) == 0 {
		return true
	}
	for _, p := range allow {
		for _, ru := range p.GetRules() {
			if refRule(ru, r, false) {
				return true
			}
		}
	}
	return false
}

// refSelects reports whether a policy of the action (CUSTOM or AUDIT)
// that applies to the workload selects the request: CUSTOM sends it to the
// provider, AUDIT marks it. Both select like DENY.
func refSelects(pols []Policy, w config.WorkloadRef, r *Request, action securityv1beta1.AuthorizationPolicy_Action) bool {
	for _, p := range pols {
		if p.Spec.GetAction() != action || !config.Applies(p.Namespace, p.Spec, w, config.DefaultRootNamespace) {
			continue
		}
		for _, ru := range p.Spec.GetRules() {
			if refRule(ru, r, true) {
				return true
			}
		}
	}
	return false
}

func refRule(ru *securityv1beta1.Rule, r *Request, deny bool) bool {
	if !r.IsHTTP && !deny && refUsesHTTP(ru) {
		return false
	}
	fromOK := len(ru.GetFrom()) == 0
	for _, f := range ru.GetFrom() {
		if refSource(f.GetSource(), r, deny) {
			fromOK = true
		}
	}
	toOK := len(ru.GetTo()) == 0
	for _, t := range ru.GetTo() {
		if refOperation(t.GetOperation(), r, deny) {
			toOK = true
		}
	}
	for _, c := range ru.GetWhen() {
		if !refCondition(c, r, deny) {
			return false
		}
	}
	return fromOK && toOK
}

func refUsesHTTP(ru *securityv1beta1.Rule) bool {
	for _, f := range ru.GetFrom() {
		s := f.GetSource()
		if len(s.GetRequestPrincipals())+len(s.GetNotRequestPrincipals()) > 0 {
			return true
		}
	}
	for _, t := range ru.GetTo() {
		o := t.GetOperation()
		if len(o.GetHosts())+len(o.GetNotHosts())+len(o.GetMethods())+len(o.GetNotMethods())+len(o.GetPaths())+len(o.GetNotPaths()) > 0 {
			return true
		}
	}
	for _, c := range ru.GetWhen() {
		if strings.HasPrefix(c.GetKey(), "request.") {
			return true
		}
	}
	return false
}

// refWild is Istio's value match: exact, "*x", "x*", "*", and path
// templates. ci compares ignoring case; starEmpty lets "*" match an empty
// value (headers and hosts: "present").
func refWild(pattern, s string, ci, starEmpty bool) bool {
	if ci {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	switch {
	case pattern == "*":
		return starEmpty || s != ""
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(s, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(s, pattern[:len(pattern)-1])
	}
	if strings.Contains(pattern, "{*}") || strings.Contains(pattern, "{**}") {
		return refTemplate(pattern, s)
	}
	return pattern == s
}

func refTemplate(pattern, s string) bool {
	ps, ss := strings.Split(pattern, "/"), strings.Split(s, "/")
	for i, p := range ps {
		if p == "{**}" {
			rest := ps[i+1:]
			if len(ss)-i < len(rest) {
				return false
			}
			tail := ss[len(ss)-len(rest):]
			for j := range rest {
				if rest[j] != tail[j] {
					return false
				}
			}
			return true
		}
		if i >= len(ss) {
			return false
		}
		if p == "{*}" {
			if ss[i] == "" {
				return false
			}
			continue
		}
		if p != ss[i] {
			return false
		}
	}
	return len(ps) == len(ss)
}

func refAny(patterns []string, s string, ci, starEmpty bool) bool {
	for _, p := range patterns {
		if refWild(p, s, ci, starEmpty) {
			return true
		}
	}
	return false
}

// refCaseInsensitive is the case table of doc.go, written out: host names
// ignore case everywhere; methods and paths ignore case where a match
// narrows access (the values of a DENY-like policy, the notValues of an
// ALLOW) and compare exactly where a match would widen it; everything else
// compares exactly.
func refCaseInsensitive(kind string, deny, notValues bool) bool {
	switch kind {
	case "host":
		return true
	case "method", "path":
		if deny {
			return !notValues
		}
		return notValues
	}
	return false
}

// refAttr is what the request has for one attribute.
type refAttr struct {
	kind      string   // "host", "method", "path", "header", or "" (exact)
	present   bool     // false: no mTLS peer, no such header, no method
	spellings []string // every way the request spells the attribute
	whole     []string // what each ALLOW value must match; nil: spellings
}

// refField is a field's match as doc.go states it. A DENY-like field
// matches when some spelling matches a value and some spelling is none of
// the notValues. An ALLOW field matches when every whole value matches a
// value and no spelling is a notValue. An absent attribute matches no
// value; absentNot says whether notValues alone then match.
func refField(vals, nots []string, a refAttr, deny, absentNot bool) bool {
	if len(vals) == 0 && len(nots) == 0 {
		return true
	}
	if !a.present {
		return len(vals) == 0 && absentNot
	}
	starEmpty := a.kind == "host" || a.kind == "header"
	valCI := refCaseInsensitive(a.kind, deny, false)
	notCI := refCaseInsensitive(a.kind, deny, true)
	if deny {
		someValue := len(vals) == 0
		someEscapes := len(nots) == 0
		for _, s := range a.spellings {
			if refAny(vals, s, valCI, starEmpty) {
				someValue = true
			}
			if !refAny(nots, s, notCI, starEmpty) {
				someEscapes = true
			}
		}
		return someValue && someEscapes
	}
	whole := a.whole
	if whole == nil {
		whole = a.spellings
	}
	for _, s := range whole {
		if len(vals) > 0 && !refAny(vals, s, valCI, starEmpty) {
			return false
		}
	}
	for _, s := range a.spellings {
		if refAny(nots, s, notCI, starEmpty) {
			return false
		}
	}
	return true
}

// refOne is an attribute with a single spelling.
func refOne(kind, s string, present bool) refAttr {
	return refAttr{kind: kind, present: present, spellings: []string{s}}
}

// refHeader spells a header as doc.go says: each line, each non-empty
// element of a line with spaces and tabs trimmed, and the lines joined
// with ','. An ALLOW's values must match each whole line.
func refHeader(lines []string) refAttr {
	a := refAttr{kind: "header", present: len(lines) > 0, whole: lines}
	a.spellings = append(a.spellings, lines...)
	for _, l := range lines {
		if !strings.Contains(l, ",") {
			continue
		}
		for _, e := range strings.Split(l, ",") {
			if e = strings.Trim(e, " \t"); e != "" {
				a.spellings = append(a.spellings, e)
			}
		}
	}
	if len(lines) > 1 {
		a.spellings = append(a.spellings, strings.Join(lines, ","))
	}
	return a
}

func refNamespace(p string) (string, bool) {
	parts := strings.Split(p, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "ns" && i > 0 {
			return parts[i+1], parts[i+1] != ""
		}
	}
	return "", false
}

func refIP(vals, nots []string, a netip.Addr) bool {
	if len(vals) == 0 && len(nots) == 0 {
		return true
	}
	in := func(list []string) bool {
		for _, v := range list {
			if !strings.Contains(v, "/") {
				v += "/32"
			}
			_, n, err := net.ParseCIDR(v)
			if err == nil && n.Contains(net.IP(a.Unmap().AsSlice())) {
				return true
			}
		}
		return false
	}
	return (len(vals) == 0 || in(vals)) && !in(nots)
}

func refPort(vals, nots []string, p uint32) bool {
	in := func(list []string) bool {
		for _, v := range list {
			if v == strconv.Itoa(int(p)) {
				return true
			}
		}
		return false
	}
	return (len(vals) == 0 || in(vals)) && !in(nots)
}

func refSource(s *securityv1beta1.Source, r *Request, deny bool) bool {
	mtls := r.Principal != ""
	ns, nsOK := refNamespace(r.Principal)
	ok := refField(s.GetPrincipals(), s.GetNotPrincipals(), refOne("", r.Principal, mtls), deny, deny) &&
		refField(s.GetNamespaces(), s.GetNotNamespaces(), refOne("", ns, nsOK), deny, deny) &&
		refIP(s.GetIpBlocks(), s.GetNotIpBlocks(), r.SourceIP) &&
		refIP(s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks(), refRemote(r))
	if !ok {
		return false
	}
	if !r.IsHTTP {
		return true // only DENY-like rules get here with HTTP fields
	}
	return refRequestPrincipals(s.GetRequestPrincipals(), s.GetNotRequestPrincipals(), r.Auth)
}

func refRemote(r *Request) netip.Addr {
	if r.RemoteIP.IsValid() {
		return r.RemoteIP
	}
	return r.SourceIP
}

func refRequestPrincipals(vals, nots []string, a *AuthInfo) bool {
	if len(vals) == 0 && len(nots) == 0 {
		return true
	}
	if a == nil {
		return len(vals) == 0
	}
	iss, sub := a.Claims["iss"].(string), a.Claims["sub"].(string)
	match := func(list []string) bool {
		for _, v := range list {
			if v == "*" {
				if iss != "" && sub != "" {
					return true
				}
				continue
			}
			i := strings.LastIndex(v, "/")
			if i < 0 {
				if refWild(v, iss, false, false) && sub != "" && strings.HasSuffix(v, "*") ||
					refWild(v, sub, false, false) && iss != "" && strings.HasPrefix(v, "*") ||
					!strings.Contains(v, "*") && v == iss && sub == "" {
					return true
				}
				continue
			}
			if refWild(v[:i], iss, false, false) && refWild(v[i+1:], sub, false, false) {
				return true
			}
		}
		return false
	}
	return (len(vals) == 0 || match(vals)) && !match(nots)
}

func refOperation(o *securityv1beta1.Operation, r *Request, deny bool) bool {
	if !refPort(o.GetPorts(), o.GetNotPorts(), r.DestinationPort) {
		return false
	}
	if !r.IsHTTP {
		return true
	}
	hosts := []string{r.Host}
	if deny {
		h := r.Host
		if hh, _, err := net.SplitHostPort(h); err == nil {
			hosts = append(hosts, hh)
			h = hh
		}
		if strings.HasSuffix(h, ".") && len(h) > 1 {
			hosts = append(hosts, strings.TrimSuffix(h, "."), strings.TrimSuffix(r.Host, "."))
		}
	}
	path := r.Path
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return refField(o.GetHosts(), o.GetNotHosts(), refAttr{kind: "host", present: true, spellings: hosts}, deny, true) &&
		refField(o.GetMethods(), o.GetNotMethods(), refOne("method", r.Method, r.Method != ""), deny, true) &&
		refField(o.GetPaths(), o.GetNotPaths(), refOne("path", path, true), deny, true)
}

func refCondition(c *securityv1beta1.Condition, r *Request, deny bool) bool {
	vals, nots := c.GetValues(), c.GetNotValues()
	key := c.GetKey()
	if strings.HasPrefix(key, "request.") && !r.IsHTTP {
		return true
	}
	switch {
	case key == "source.namespace":
		ns, ok := refNamespace(r.Principal)
		return refField(vals, nots, refOne("", ns, ok), deny, deny)
	case key == "source.principal":
		return refField(vals, nots, refOne("", r.Principal, r.Principal != ""), deny, deny)
	case key == "connection.sni":
		return refField(vals, nots, refOne("", r.SNI, r.SNI != ""), deny, deny)
	case key == "remote.ip":
		return refIP(vals, nots, refRemote(r))
	case key == "destination.port":
		return refPort(vals, nots, r.DestinationPort)
	case strings.HasPrefix(key, "request.headers["):
		name := strings.TrimSuffix(strings.TrimPrefix(key, "request.headers["), "]")
		var got []string
		for k, v := range r.Headers {
			if strings.EqualFold(k, name) {
				got = v
			}
		}
		return refField(vals, nots, refHeader(got), deny, true)
	case strings.HasPrefix(key, "request.auth.claims["):
		if r.Auth == nil {
			return len(vals) == 0
		}
		name := strings.TrimSuffix(strings.TrimPrefix(key, "request.auth.claims["), "]")
		var got []string
		switch v := r.Auth.Claims[name].(type) {
		case string:
			got = []string{v}
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					got = append(got, s)
				}
			}
		}
		pos := len(vals) == 0
		for _, g := range got {
			if refAny(nots, g, false, false) {
				return false
			}
			pos = pos || refAny(vals, g, false, false)
		}
		return pos
	}
	panic("reference: unexpected key " + key)
}
