package authz

import (
	"net/netip"
	"strings"
)

// trace collects, for Explain, what failed in a rule. A nil trace costs
// nothing: the hot path passes nil.
type trace struct {
	failed  []*field
	ignored []*field
	tcpHTTP bool // ALLOW rule with HTTP-only fields on a TCP connection
}

// match returns the index of the first rule that matches, or -1. A policy
// without rules matches nothing.
func (p *policy) match(r *Request, tr *trace) int {
	for i, ru := range p.rules {
		if ru.match(r, p.denyLike, tr) {
			return i
		}
	}
	return -1
}

// match applies Istio's rule semantics: some `from` AND some `to` AND
// every `when`. On a TCP connection an ALLOW rule that uses an HTTP-only
// field never matches; DENY, AUDIT and CUSTOM rules ignore those fields.
func (ru *rule) match(r *Request, denyLike bool, tr *trace) bool {
	if !r.IsHTTP && ru.http && !denyLike {
		if tr != nil {
			tr.tcpHTTP = true
		}
		return false
	}
	ok := anySet(ru.from, r, tr)
	if ok || tr != nil {
		ok = anySet(ru.to, r, tr) && ok
	}
	if ok || tr != nil {
		ok = allFields(ru.when, r, tr) && ok
	}
	return ok
}

func anySet(sets [][]*field, r *Request, tr *trace) bool {
	found := false
	for _, set := range sets {
		if allFields(set, r, tr) {
			found = true
			if tr == nil {
				return true
			}
		}
	}
	return found
}

func allFields(fs []*field, r *Request, tr *trace) bool {
	ok := true
	for _, f := range fs {
		if !r.IsHTTP && f.attr.httpOnly() {
			// Only DENY-like rules get here (see rule.match): the field
			// is ignored, which widens the rule.
			if tr != nil {
				tr.ignored = append(tr.ignored, f)
			}
			continue
		}
		if !f.ok(r) {
			ok = false
			if tr == nil {
				return false
			}
			tr.failed = append(tr.failed, f)
		}
	}
	return ok
}

// ok reports whether the request satisfies the field: some value matches
// (when values are set) and no notValue matches (when notValues are set).
func (f *field) ok(r *Request) bool {
	switch f.attr {
	case attrPrincipal:
		return f.single(r.Principal, r.Principal != "", f.deny)
	case attrNamespace:
		ns, ok := principalNamespace(r.Principal)
		return f.single(ns, ok, f.deny)
	case attrTrustDomain:
		td, ok := principalTrustDomain(r.Principal)
		return f.single(td, ok, f.deny)
	case attrServiceAccount:
		return f.serviceAccount(r.Principal)
	case attrSNI:
		return f.single(r.SNI, r.SNI != "", f.deny)
	case attrSourceIP:
		return f.ip(r.SourceIP)
	case attrRemoteIP:
		if r.RemoteIP.IsValid() {
			return f.ip(r.RemoteIP)
		}
		return f.ip(r.SourceIP)
	case attrDestIP:
		return f.ip(r.DestinationIP)
	case attrDestPort:
		return f.port(r.DestinationPort)
	case attrRequestPrincipal:
		return f.requestPrincipal(r.Auth)
	case attrAudiences:
		if r.Auth == nil {
			return f.single("", false, true)
		}
		return f.list(stringsList(r.Auth.Audiences))
	case attrPresenter:
		if r.Auth == nil {
			return f.single("", false, true)
		}
		return f.single(r.Auth.Presenter, r.Auth.Presenter != "", true)
	case attrClaim:
		if r.Auth == nil {
			return f.single("", false, true)
		}
		return f.list(anyList{claimValue(r.Auth.Claims, f.claim)})
	case attrHeader:
		return f.headerOK(r)
	case attrHost:
		return f.host(r.Host)
	case attrMethod:
		return f.single(r.Method, r.Method != "", true)
	case attrPath:
		p := pathForMatch(r.Path)
		if sp, changed := strictPath(p, f.deny); changed {
			vals := [2]string{p, sp}
			return f.multi(vals[:])
		}
		return f.single(p, true, true)
	}
	return false
}

// single matches a one-valued attribute. When the attribute is absent no
// value matches; absentNot says whether notValues alone then match.
func (f *field) single(s string, present, absentNot bool) bool {
	if !present {
		return len(f.values) == 0 && absentNot
	}
	if len(f.values) > 0 && !anyMatch(f.values, s, f.foldVals) {
		return false
	}
	return !anyMatch(f.notValues, s, f.foldNots)
}

// multi matches an attribute that may carry several values an attacker can
// add to (repeated headers, host spellings). Each value is checked on its
// own: in an ALLOW policy every value must pass, in a DENY-like policy one
// value matching is enough. Either way an extra value can only deny more.
func (f *field) multi(vals []string) bool {
	if len(vals) == 0 {
		return len(f.values) == 0
	}
	if f.deny {
		pos := len(f.values) == 0
		neg := len(f.notValues) == 0
		for _, v := range vals {
			if !pos && anyMatch(f.values, v, f.foldVals) {
				pos = true
			}
			if !neg && !anyMatch(f.notValues, v, f.foldNots) {
				neg = true
			}
		}
		return pos && neg
	}
	for _, v := range vals {
		if len(f.values) > 0 && !anyMatch(f.values, v, f.foldVals) {
			return false
		}
		if anyMatch(f.notValues, v, f.foldNots) {
			return false
		}
	}
	return true
}

func (f *field) headerOK(r *Request) bool {
	var one [1]string
	switch f.header {
	case ":authority":
		one[0] = r.Host
	case ":method":
		one[0] = r.Method
	case ":path":
		one[0] = r.Path
	default:
		return f.headerLines(lookupHeader(r.Headers, f.header))
	}
	return f.multi(one[:])
}

// headerLines matches a header that may arrive as several lines, each of
// them a comma-separated list. HTTP makes "X-Role: a,b" the same as two
// lines "a" and "b" (RFC 9110 section 5.3), and a backend may read either
// way, so the header has several spellings: each line, each element of a
// line (optional whitespace trimmed, empty elements skipped), and all
// lines joined with ',' as Envoy joins them
// (HeaderUtility::getAllOfHeaderAsString). Envoy matched only the joined
// string, so a DENY on "admin" missed a second line "admin"
// (CVE-2026-26308, GHSA-ghc4-35x6-crw5), and it never splits one line.
//
// A DENY-like field matches when one spelling matches a value and one
// spelling escapes the notValues. An ALLOW field needs every line to match
// a value, the whole line as Envoy compares it (so "admin,evil" is not
// "admin"), and no spelling to match a notValue. Adding a line or an
// element can only deny more.
func (f *field) headerLines(lines []string) bool {
	if len(lines) == 0 {
		return len(f.values) == 0
	}
	if f.deny {
		pos := len(f.values) == 0
		neg := len(f.notValues) == 0
		check := func(s string) {
			if !pos && anyMatch(f.values, s, f.foldVals) {
				pos = true
			}
			if !neg && !anyMatch(f.notValues, s, f.foldNots) {
				neg = true
			}
		}
		for _, l := range lines {
			check(l)
			forEachElement(l, check)
		}
		if len(lines) > 1 {
			if !pos && anyMatchJoined(f.values, lines, f.foldVals) {
				pos = true
			}
			if !neg && !anyMatchJoined(f.notValues, lines, f.foldNots) {
				neg = true
			}
		}
		return pos && neg
	}
	excluded := false
	exclude := func(s string) {
		if !excluded && anyMatch(f.notValues, s, f.foldNots) {
			excluded = true
		}
	}
	for _, l := range lines {
		if len(f.values) > 0 && !anyMatch(f.values, l, f.foldVals) {
			return false
		}
		exclude(l)
		forEachElement(l, exclude)
	}
	if len(lines) > 1 && anyMatchJoined(f.notValues, lines, f.foldNots) {
		return false
	}
	return !excluded
}

// forEachElement calls fn with each non-empty element of a comma-separated
// line, without its surrounding spaces and tabs. A line without a comma
// has no elements besides itself, and fn is not called.
func forEachElement(line string, fn func(string)) {
	if strings.IndexByte(line, ',') < 0 {
		return
	}
	for line != "" {
		el := line
		if i := strings.IndexByte(line, ','); i >= 0 {
			el, line = line[:i], line[i+1:]
		} else {
			line = ""
		}
		if el = strings.Trim(el, " \t"); el != "" {
			fn(el)
		}
	}
}

// lookupHeader finds a header by its canonical key, falling back to a
// case-insensitive scan for maps built with other spellings.
func lookupHeader(h map[string][]string, key string) []string {
	if v, ok := h[key]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// host matches the Host (:authority) case-insensitively. ALLOW policies
// see the host as sent. DENY-like policies also see it without its port
// and without a trailing dot, so neither spelling escapes a DENY.
func (f *field) host(h string) bool {
	if !f.deny {
		var one = [1]string{h}
		return f.multi(one[:])
	}
	var vs [4]string
	n := 0
	vs[n], n = h, n+1
	bare := stripPort(h)
	if bare != h {
		vs[n], n = bare, n+1
	}
	if d := strings.TrimSuffix(bare, "."); d != bare && d != "" {
		vs[n], n = d, n+1
		if bare != h {
			vs[n], n = strings.TrimSuffix(h, "."), n+1
		}
	}
	return f.multi(vs[:n])
}

// stripPort removes a ":port" suffix from a host, leaving IPv6 literals
// intact.
func stripPort(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.IndexByte(h[i:], ']') >= 0 {
		return h
	}
	if strings.IndexByte(h[:i], ':') >= 0 && !strings.HasPrefix(h, "[") {
		return h // bare IPv6 address
	}
	for j := i + 1; j < len(h); j++ {
		if h[j] < '0' || h[j] > '9' {
			return h
		}
	}
	return h[:i]
}

func (f *field) ip(a netip.Addr) bool {
	if !a.IsValid() {
		return len(f.cidrs) == 0 && f.deny
	}
	a = a.Unmap()
	if len(f.cidrs) > 0 && !containsAddr(f.cidrs, a) {
		return false
	}
	return !containsAddr(f.notCIDRs, a)
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (f *field) port(p uint32) bool {
	if len(f.ports) > 0 && !containsPort(f.ports, p) {
		return false
	}
	return !containsPort(f.notPorts, p)
}

func containsPort(ps []uint32, p uint32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func (f *field) serviceAccount(principal string) bool {
	ns, ok1 := principalNamespace(principal)
	sa, ok2 := principalServiceAccount(principal)
	if !ok1 || !ok2 {
		return len(f.sas) == 0 && f.deny
	}
	if len(f.sas) > 0 && !containsSA(f.sas, ns, sa) {
		return false
	}
	return !containsSA(f.notSAs, ns, sa)
}

func containsSA(refs []saRef, ns, sa string) bool {
	for _, r := range refs {
		if r.ns == ns && r.sa == sa {
			return true
		}
	}
	return false
}

func (f *field) requestPrincipal(a *AuthInfo) bool {
	if a == nil {
		return len(f.reqP) == 0
	}
	iss, sub := issuerSubject(a)
	if len(f.reqP) > 0 && !matchIssSub(f.reqP, iss, sub) {
		return false
	}
	return !matchIssSub(f.notReqP, iss, sub)
}

func matchIssSub(ms []issSub, iss, sub string) bool {
	for i := range ms {
		if ms[i].iss.match(iss, false) && ms[i].sub.match(sub, false) {
			return true
		}
	}
	return false
}

// issuerSubject returns the token's iss and sub claims, or splits the
// request principal at its last '/' when the claims are not strings.
func issuerSubject(a *AuthInfo) (iss, sub string) {
	i, ok1 := a.Claims["iss"].(string)
	s, ok2 := a.Claims["sub"].(string)
	if ok1 && ok2 {
		return i, s
	}
	if idx := strings.LastIndexByte(a.Principal, '/'); idx >= 0 {
		return a.Principal[:idx], a.Principal[idx+1:]
	}
	return a.Principal, ""
}

// valueList is a claim value seen as a list of strings, without copying.
type valueList interface {
	len() int
	at(i int) (string, bool)
}

type stringsList []string

func (l stringsList) len() int                { return len(l) }
func (l stringsList) at(i int) (string, bool) { return l[i], true }

// anyList views one claim value: a string is a one-element list, a list
// is itself; other JSON types hold no strings.
type anyList struct{ v any }

func (l anyList) len() int {
	switch v := l.v.(type) {
	case string:
		return 1
	case []any:
		return len(v)
	case []string:
		return len(v)
	}
	return 0
}

func (l anyList) at(i int) (string, bool) {
	switch v := l.v.(type) {
	case string:
		return v, true
	case []any:
		s, ok := v[i].(string)
		return s, ok
	case []string:
		return v[i], true
	}
	return "", false
}

// list matches a list-valued claim: it matches when any element matches
// a value, and no element matches a notValue. A missing claim matches
// only notValues, as in Istio.
func (f *field) list(l valueList) bool {
	n := l.len()
	pos := len(f.values) == 0
	for i := 0; i < n; i++ {
		s, ok := l.at(i)
		if !ok {
			continue
		}
		if !pos && anyMatch(f.values, s, false) {
			pos = true
		}
		if anyMatch(f.notValues, s, false) {
			return false
		}
	}
	return pos
}

// claimValue walks nested claims: request.auth.claims[a][b] is claims
// a.b.
func claimValue(claims map[string]any, path []string) any {
	var cur any = claims
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// pathForMatch drops the query and fragment: Istio compares paths without
// them.
func pathForMatch(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}
