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

// refWild is Istio's value match: exact, "*x", "x*", "*".
func refWild(pattern, s string, fold, starMatchesEmpty bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	switch {
	case pattern == "*":
		return starMatchesEmpty || s != ""
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

func refAny(patterns []string, s string, fold, starEmpty bool) bool {
	for _, p := range patterns {
		if refWild(p, s, fold, starEmpty) {
			return true
		}
	}
	return false
}

// refField matches a field over the spellings of an attribute. ok is
// false when the attribute is absent; absentNot says what notValues alone
// give then. all selects "every spelling passes" over "one spelling".
func refField(vals, nots, spellings []string, present, absentNot, all, fold, starEmpty bool) bool {
	if len(vals) == 0 && len(nots) == 0 {
		return true
	}
	if !present || len(spellings) == 0 {
		return len(vals) == 0 && absentNot
	}
	if all {
		for _, s := range spellings {
			if len(vals) > 0 && !refAny(vals, s, fold, starEmpty) {
				return false
			}
			if refAny(nots, s, fold, starEmpty) {
				return false
			}
		}
		return true
	}
	pos, neg := len(vals) == 0, len(nots) == 0
	for _, s := range spellings {
		pos = pos || refAny(vals, s, fold, starEmpty)
		neg = neg || !refAny(nots, s, fold, starEmpty)
	}
	return pos && neg
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
	ok := refField(s.GetPrincipals(), s.GetNotPrincipals(), []string{r.Principal}, mtls, deny, true, false, false) &&
		refField(s.GetNamespaces(), s.GetNotNamespaces(), []string{ns}, nsOK, deny, true, false, false) &&
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
	return refField(o.GetHosts(), o.GetNotHosts(), hosts, true, true, !deny, true, true) &&
		refField(o.GetMethods(), o.GetNotMethods(), []string{r.Method}, r.Method != "", true, true, deny, false) &&
		refField(o.GetPaths(), o.GetNotPaths(), []string{path}, true, true, true, false, false)
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
		return refField(vals, nots, []string{ns}, ok, deny, true, false, false)
	case key == "source.principal":
		return refField(vals, nots, []string{r.Principal}, r.Principal != "", deny, true, false, false)
	case key == "connection.sni":
		return refField(vals, nots, []string{r.SNI}, r.SNI != "", deny, true, false, false)
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
		return refField(vals, nots, got, len(got) > 0, true, !deny, false, true)
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
