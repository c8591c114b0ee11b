package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

func (c *checker) authorizationPolicy(s *securityv1beta1.AuthorizationPolicy) {
	c.scope(s)
	c.enum("spec.action", int32(s.GetAction()), securityv1beta1.AuthorizationPolicy_Action_name)
	custom := s.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM
	rulesWritten := c.written("spec.rules")
	switch {
	case custom && !rulesWritten:
		c.errorf("spec.rules", "CUSTOM action without `rules` is meaningless as it will never be triggered; add an empty rule `{}` to trigger it for every request")
	case custom && s.GetProvider().GetName() == "":
		c.errorf("spec.provider.name", "`provider.name` must not be empty for action CUSTOM")
	}
	if s.GetProvider() != nil && !custom {
		c.errorf("spec.provider", "`provider` must not be set with non CUSTOM action, found %s", s.GetAction())
	}
	if s.GetAction() == securityv1beta1.AuthorizationPolicy_DENY && !rulesWritten {
		c.errorf("spec.rules", "DENY action without `rules` is meaningless as it will never be triggered; add an empty rule `{}` to trigger it for every request")
	}
	for i, rule := range s.GetRules() {
		c.authzRule(fmt.Sprintf("spec.rules[%d]", i), rule, custom)
	}
}

func (c *checker) authzRule(path string, rule *securityv1beta1.Rule, custom bool) {
	if len(rule.GetFrom()) == 0 && c.written(path+".from") {
		c.errorf(path+".from", "`from` must not be empty")
	}
	for j, from := range rule.GetFrom() {
		p := fmt.Sprintf("%s.from[%d].source", path, j)
		src := from.GetSource()
		if src == nil {
			c.errorf(p, "`source` must be set")
			continue
		}
		c.source(p, src, custom)
	}
	if len(rule.GetTo()) == 0 && c.written(path+".to") {
		c.errorf(path+".to", "`to` must not be empty")
	}
	for j, to := range rule.GetTo() {
		p := fmt.Sprintf("%s.to[%d].operation", path, j)
		op := to.GetOperation()
		if op == nil {
			c.errorf(p, "`operation` must be set")
			continue
		}
		c.operation(p, op)
	}
	for j, cond := range rule.GetWhen() {
		c.condition(fmt.Sprintf("%s.when[%d]", path, j), cond, custom)
	}
}

func (c *checker) source(p string, src *securityv1beta1.Source, custom bool) {
	lists := []struct {
		name string
		vs   []string
		ip   bool
	}{
		{"principals", src.GetPrincipals(), false},
		{"notPrincipals", src.GetNotPrincipals(), false},
		{"requestPrincipals", src.GetRequestPrincipals(), false},
		{"notRequestPrincipals", src.GetNotRequestPrincipals(), false},
		{"namespaces", src.GetNamespaces(), false},
		{"notNamespaces", src.GetNotNamespaces(), false},
		{"ipBlocks", src.GetIpBlocks(), true},
		{"notIpBlocks", src.GetNotIpBlocks(), true},
		{"remoteIpBlocks", src.GetRemoteIpBlocks(), true},
		{"notRemoteIpBlocks", src.GetNotRemoteIpBlocks(), true},
		{"serviceAccounts", src.GetServiceAccounts(), false},
		{"notServiceAccounts", src.GetNotServiceAccounts(), false},
	}
	empty := true
	for i, l := range lists {
		if len(l.vs) == 0 {
			continue
		}
		empty = false
		lp := p + "." + l.name
		c.nonEmpty(lp, l.vs)
		if l.ip {
			for k, v := range l.vs {
				if v != "" {
					c.ipOrCIDR(fmt.Sprintf("%s[%d]", lp, k), v)
				}
			}
		}
		if custom && i < 6 {
			c.errorf(lp, "%s is not supported with CUSTOM action", l.name)
		}
	}
	if empty {
		c.errorf(p, "`source` must not be empty")
	}
	// Istio's ValidateAuthorizationPolicy (and the CRD's rule): "cannot set
	// serviceAccounts with namespaces or principals", the negative forms
	// included on both sides.
	identities := len(src.GetPrincipals()) + len(src.GetNotPrincipals()) + len(src.GetNamespaces()) + len(src.GetNotNamespaces())
	for _, l := range []struct {
		name string
		vs   []string
	}{{"serviceAccounts", src.GetServiceAccounts()}, {"notServiceAccounts", src.GetNotServiceAccounts()}} {
		if len(l.vs) == 0 {
			continue
		}
		if identities > 0 {
			c.errorf(p+"."+l.name, "cannot set %s with namespaces or principals", l.name)
		}
		for k, v := range l.vs {
			if v != "" {
				c.serviceAccount(fmt.Sprintf("%s.%s[%d]", p, l.name, k), v)
			}
		}
	}
}

// serviceAccount checks one serviceAccounts value: "<namespace>/<name>"
// or "<name>" (the policy's namespace), no wildcard.
func (c *checker) serviceAccount(p, v string) {
	ns, sa, qualified := strings.Cut(v, "/")
	if !qualified {
		ns, sa = "-", v
	}
	if ns == "" || sa == "" || strings.Contains(v, "*") || strings.Contains(sa, "/") {
		c.errorf(p, "invalid service account %q: want <namespace>/<serviceaccount> or <serviceaccount>, no wildcards", v)
	}
}

var (
	// unsupportedPathTemplate matches what Istio rejects in path
	// templates: named variables, empty braces, and `*`/`**` globs beside
	// `{*}`/`{**}`.
	unsupportedPathTemplate = regexp.MustCompile(`\/{\w+\=\*[*]?\}|{\w*\}|\/\*[*]?|\*[*]?\/`)
)

func (c *checker) operation(p string, op *securityv1beta1.Operation) {
	lists := map[string][]string{
		"hosts": op.GetHosts(), "notHosts": op.GetNotHosts(),
		"ports": op.GetPorts(), "notPorts": op.GetNotPorts(),
		"methods": op.GetMethods(), "notMethods": op.GetNotMethods(),
		"paths": op.GetPaths(), "notPaths": op.GetNotPaths(),
	}
	empty := true
	for _, name := range []string{"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"} {
		vs := lists[name]
		if len(vs) == 0 {
			continue
		}
		empty = false
		lp := p + "." + name
		c.nonEmpty(lp, vs)
		for k, v := range vs {
			if v == "" {
				continue
			}
			ep := fmt.Sprintf("%s[%d]", lp, k)
			switch name {
			case "ports", "notPorts":
				c.portString(ep, v)
			case "paths", "notPaths":
				c.path(ep, v)
			}
		}
	}
	if empty {
		c.errorf(p, "`operation` must not be empty")
	}
}

// path checks one path of an operation: "*", an exact path or a prefix
// ("/api/*") starting with "/", a suffix ("*.png"), or a template with
// `{*}` (one segment) and `{**}` (the rest, last only).
func (c *checker) path(p, v string) {
	if v == "*" {
		return
	}
	if !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
		c.errorf(p, "invalid path %q: must start with '/' or be '*', a prefix '/x*' or a suffix '*x'", v)
		return
	}
	if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
		if !strings.HasPrefix(v, "/") {
			c.errorf(p, "invalid path template %q: must start with '/'", v)
			return
		}
		if unsupportedPathTemplate.MatchString(v) {
			c.errorf(p, "invalid or unsupported path template %q", v)
			return
		}
		if i := strings.Index(v, "{**}"); i >= 0 && i+len("{**}") != len(v) {
			c.errorf(p, "invalid path template %q: {**} must be the last segment", v)
			return
		}
		for _, seg := range strings.Split(v, "/") {
			if strings.Contains(seg, "{") && seg != "{*}" && seg != "{**}" {
				c.errorf(p, "invalid path template %q: {*} and {**} must be a whole segment", v)
				return
			}
		}
		return
	}
	if n := strings.Count(v, "*"); n > 1 || n == 1 && !strings.HasPrefix(v, "*") && !strings.HasSuffix(v, "*") {
		c.errorf(p, "invalid path %q: '*' is allowed only at the start or the end", v)
	}
}

// conditionKeys are the `when` keys Istio accepts; a key ending in "[]"
// takes a bracketed name ("request.headers[User-Agent]").
var conditionKeys = map[string]string{
	"request.headers[]":             "",
	"source.ip":                     "ip",
	"remote.ip":                     "ip",
	"source.namespace":              "",
	"source.principal":              "",
	"request.auth.principal":        "",
	"request.auth.audiences":        "",
	"request.auth.presenter":        "",
	"request.auth.claims[]":         "",
	"destination.ip":                "ip",
	"destination.port":              "port",
	"connection.sni":                "",
	"experimental.envoy.filters.[]": "",
}

func (c *checker) condition(p string, cond *securityv1beta1.Condition, custom bool) {
	key := cond.GetKey()
	if key == "" {
		c.errorf(p+".key", "`key` must not be empty")
		return
	}
	if len(cond.GetValues()) == 0 && len(cond.GetNotValues()) == 0 {
		c.errorf(p+".values", "at least one of `values` or `notValues` must be set for key %s", key)
		return
	}
	kind, err := conditionKind(key)
	if err != "" {
		c.errorf(p+".key", "%s", err)
		return
	}
	if custom && (key == "source.namespace" || key == "source.principal" || strings.HasPrefix(key, "request.auth.")) {
		c.errorf(p+".key", "%s is not supported with CUSTOM action", key)
	}
	for _, l := range []struct {
		name string
		vs   []string
	}{{"values", cond.GetValues()}, {"notValues", cond.GetNotValues()}} {
		lp := p + "." + l.name
		c.nonEmpty(lp, l.vs)
		for i, v := range l.vs {
			if v == "" {
				continue
			}
			ep := fmt.Sprintf("%s[%d]", lp, i)
			switch kind {
			case "ip":
				c.ipOrCIDR(ep, v)
			case "port":
				c.portString(ep, v)
			}
		}
	}
}

// conditionKind returns the value kind of a condition key ("ip", "port",
// or "" for strings), or an error message for a key Istio rejects.
func conditionKind(key string) (string, string) {
	if kind, ok := conditionKeys[key]; ok {
		return kind, ""
	}
	switch {
	case key == "destination.namespace":
		return "", "attribute destination.namespace is replaced by the metadata.namespace"
	case strings.HasPrefix(key, "destination.labels"):
		return "", "attribute " + key + " is replaced by the workload selector"
	case key == "destination.name" || key == "destination.user":
		return "", "deprecated attribute " + key + ": only supported in v1alpha1"
	}
	for _, prefix := range []string{"request.headers", "request.auth.claims", "experimental.envoy.filters."} {
		if strings.HasPrefix(key, prefix) {
			open := strings.Index(key, "[")
			if strings.HasSuffix(key, "]") && open > 0 && open < len(key)-2 {
				return "", ""
			}
			return "", fmt.Sprintf("bad key %s: should have format a[b]", key)
		}
	}
	return "", "unknown attribute: " + key
}

func (c *checker) peerAuthentication(s *securityv1beta1.PeerAuthentication) {
	c.selector("spec.selector", s.GetSelector())
	if s.GetMtls() != nil {
		c.enum("spec.mtls.mode", int32(s.GetMtls().GetMode()), securityv1beta1.PeerAuthentication_MutualTLS_Mode_name)
	}
	noSelector := len(s.GetSelector().GetMatchLabels()) == 0
	if noSelector && len(s.GetPortLevelMtls()) > 0 {
		c.errorf("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS; add a selector")
	}
	if len(s.GetPortLevelMtls()) == 0 && c.written("spec.portLevelMtls") {
		c.errorf("spec.portLevelMtls", "port level mTLS, if defined, must have at least one element")
	}
	for port, m := range s.GetPortLevelMtls() {
		p := fmt.Sprintf("spec.portLevelMtls.%d", port)
		c.port(p, port)
		c.enum(p+".mode", int32(m.GetMode()), securityv1beta1.PeerAuthentication_MutualTLS_Mode_name)
	}
}

// reservedOutputHeaders may not receive JWT claims: they are hop or proxy
// headers whose meaning Palisade (or Envoy) owns.
var reservedOutputHeaders = map[string]bool{
	"host": true, "authorization": true, "x-forwarded-client-cert": true,
	"x-forwarded-for": true, "x-request-id": true, "content-length": true, "transfer-encoding": true,
	"connection": true, "te": true, "upgrade": true,
}

func (c *checker) requestAuthentication(s *securityv1beta1.RequestAuthentication) {
	c.scope(s)
	for i, rule := range s.GetJwtRules() {
		p := fmt.Sprintf("spec.jwtRules[%d]", i)
		// Istio (since 1.27, istio/istio#56158) takes a rule without an
		// issuer when it names a jwksUri: the token's iss is then not
		// checked. Before, it required the issuer.
		if rule.GetIssuer() == "" && rule.GetJwksUri() == "" {
			c.errorf(p+".issuer", "issuer or jwksUri must be set")
		}
		c.nonEmpty(p+".audiences", rule.GetAudiences())
		if rule.GetJwksUri() != "" && rule.GetJwks() != "" {
			c.errorf(p+".jwks", "only one of jwks and jwksUri may be set")
		}
		if u := rule.GetJwksUri(); u != "" {
			pu, err := url.Parse(u)
			switch {
			case err != nil:
				c.errorf(p+".jwksUri", "invalid URL %q", u)
			case pu.Scheme != "http" && pu.Scheme != "https":
				c.errorf(p+".jwksUri", "URI scheme %q is not supported; use http or https", pu.Scheme)
			case pu.Host == "":
				c.errorf(p+".jwksUri", "URL %q has no host", u)
			}
		}
		if rule.GetJwks() != "" {
			if _, err := jwk.Parse([]byte(rule.GetJwks())); err != nil {
				c.errorf(p+".jwks", "jwks parse error: %v", err)
			}
		}
		for j, h := range rule.GetFromHeaders() {
			if h.GetName() == "" {
				c.errorf(fmt.Sprintf("%s.fromHeaders[%d].name", p, j), "location header name must be non-empty")
			}
		}
		c.nonEmpty(p+".fromParams", rule.GetFromParams())
		c.nonEmpty(p+".fromCookies", rule.GetFromCookies())
		for j, ch := range rule.GetOutputClaimToHeaders() {
			hp := fmt.Sprintf("%s.outputClaimToHeaders[%d]", p, j)
			switch {
			case ch.GetClaim() == "":
				c.errorf(hp+".claim", "claim must be non-empty")
			case ch.GetHeader() == "":
				c.errorf(hp+".header", "header must be non-empty")
			case !headerName.MatchString(ch.GetHeader()):
				c.errorf(hp+".header", "header name %q is not a valid header name", ch.GetHeader())
			case reservedOutputHeaders[strings.ToLower(ch.GetHeader())] || strings.HasPrefix(strings.ToLower(ch.GetHeader()), "x-envoy-"):
				c.errorf(hp+".header", "header %q is reserved", ch.GetHeader())
			}
		}
		if h := rule.GetOutputPayloadToHeader(); h != "" && !headerName.MatchString(h) {
			c.errorf(p+".outputPayloadToHeader", "header name %q is not a valid header name", h)
		}
		if t := rule.GetTimeout(); t != nil && (t.CheckValid() != nil || t.AsDuration() <= 0) {
			c.errorf(p+".timeout", "timeout must be a positive duration")
		}
	}
}
