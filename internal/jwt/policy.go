package jwt

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

// Policy is one RequestAuthentication resource.
type Policy struct {
	Namespace, Name string
	Spec            *securityv1beta1.RequestAuthentication
}

func (p Policy) key() string { return p.Namespace + "/" + p.Name }

// Envoy's default token locations, used by a rule that names none.
const (
	DefaultHeader       = "Authorization"
	DefaultHeaderPrefix = "Bearer "
	DefaultParam        = "access_token"
)

// clockSkew is Envoy's default allowance for exp and nbf.
const clockSkew = 60 * time.Second

// rule is one compiled jwtRule.
type rule struct {
	policy        string
	index         int // position in the policy's jwtRules
	issuer        string
	audiences     map[string]bool // sanitized; empty means any
	keys          keySource
	forward       bool
	payloadHeader string
	claimHeaders  []claimHeader
	timeout       time.Duration
	locations     []string // for RuleInfo
}

type claimHeader struct {
	header string
	claim  []string // path into the claims
}

// Authenticator validates the tokens of requests to one workload. It is
// immutable and safe for concurrent use.
type Authenticator struct {
	rules   []*rule
	headers []*location // by header name, then longest prefix first
	params  []*location
	cookies []*location
	outputs []string // every header the rules write, removed from requests first
	now     func() time.Time
	cache   *tokenCache // the KeyStore's; nil: every token is verified
}

// Compile builds the Authenticator for workload w from the
// RequestAuthentication policies that apply to it (config.Applies with the
// root namespace rootNS); the others are ignored. Remote key sets are
// registered with keys, which may be nil only when every rule has inline
// jwks. Compile reports every invalid rule, and an Authenticator is never
// built from a partly valid policy set.
func Compile(policies []Policy, w config.WorkloadRef, rootNS string, keys *KeyStore) (*Authenticator, error) {
	ps := make([]Policy, 0, len(policies))
	for _, p := range policies {
		if p.Spec != nil && config.Applies(p.Namespace, p.Spec, w, rootNS) {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].key() < ps[j].key() })

	a := &Authenticator{now: time.Now}
	if keys != nil {
		a.now = keys.now
		a.cache = keys.tokens
	}
	locs := map[string]*location{}
	outputs := map[string]bool{}
	var errs []error
	for _, p := range ps {
		for i, jr := range p.Spec.GetJwtRules() {
			r, ls, err := compileRule(p.key(), i, jr, keys)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ri := len(a.rules)
			a.rules = append(a.rules, r)
			for _, l := range ls {
				id := l.id()
				if have, ok := locs[id]; ok {
					have.rules = append(have.rules, ri)
					continue
				}
				l.rules = []int{ri}
				locs[id] = l
			}
			if r.payloadHeader != "" {
				outputs[http.CanonicalHeaderKey(r.payloadHeader)] = true
			}
			for _, ch := range r.claimHeaders {
				outputs[http.CanonicalHeaderKey(ch.header)] = true
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, l := range locs {
		switch l.kind {
		case fromHeader:
			a.headers = append(a.headers, l)
		case fromParam:
			a.params = append(a.params, l)
		case fromCookie:
			a.cookies = append(a.cookies, l)
		}
	}
	sort.Slice(a.headers, func(i, j int) bool {
		x, y := a.headers[i], a.headers[j]
		if x.name != y.name {
			return x.name < y.name
		}
		return len(x.prefix) > len(y.prefix)
	})
	sort.Slice(a.params, func(i, j int) bool { return a.params[i].name < a.params[j].name })
	sort.Slice(a.cookies, func(i, j int) bool { return a.cookies[i].name < a.cookies[j].name })
	for h := range outputs {
		a.outputs = append(a.outputs, h)
	}
	sort.Strings(a.outputs)
	return a, nil
}

// Validate reports every problem of one RequestAuthentication's jwtRules,
// as Compile would, without fetching anything: for `palisade analyze` and
// config validation.
func Validate(p Policy) error {
	if p.Spec == nil {
		return fmt.Errorf("jwt: RequestAuthentication %s: no spec", p.key())
	}
	keys := NewKeyStore(KeyStoreOptions{})
	var errs []error
	for i, jr := range p.Spec.GetJwtRules() {
		if _, _, err := compileRule(p.key(), i, jr, keys); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func compileRule(policy string, i int, jr *securityv1beta1.JWTRule, keys *KeyStore) (*rule, []*location, error) {
	path := fmt.Sprintf("jwt: RequestAuthentication %s: jwtRules[%d]", policy, i)
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	r := &rule{
		policy: policy, index: i, issuer: jr.GetIssuer(), forward: jr.GetForwardOriginalToken(),
		payloadHeader: jr.GetOutputPayloadToHeader(), timeout: DefaultFetchTimeout,
		audiences: map[string]bool{},
	}
	if r.issuer == "" && jr.GetJwksUri() == "" {
		// Istio 1.27+ (validateJwtRule): a rule needs an issuer or a
		// jwksUri; without an issuer the token's iss is not checked.
		bad("issuer", "issuer or jwksUri must be set")
	}
	for _, aud := range jr.GetAudiences() {
		r.audiences[sanitizeAudience(aud)] = true
	}
	if d := jr.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			bad("timeout", "must be a positive duration")
		} else {
			r.timeout = d.AsDuration()
		}
	}
	switch {
	case jr.GetJwks() != "": // Istio uses inline keys when both are set
		keys, err := parseJWKS([]byte(jr.GetJwks()))
		if err != nil {
			bad("jwks", "%v", err)
		} else {
			r.keys = inlineSet{kl: newKeyList(keys, time.Time{}, "")}
		}
	case jr.GetJwksUri() != "":
		if err := checkFetchURL(jr.GetJwksUri()); err != nil {
			bad("jwksUri", "%v", err)
		} else if keys == nil {
			bad("jwksUri", "no key store to fetch it")
		} else {
			r.keys = keys.register(r.issuer, jr.GetJwksUri(), r.timeout)
		}
	default:
		if err := checkFetchURL(r.issuer); err != nil && r.issuer != "" {
			bad("issuer", "neither jwks nor jwksUri is set, and the issuer is not a URL to discover them from: %v", err)
		} else if keys == nil && r.issuer != "" {
			bad("issuer", "no key store to discover keys")
		} else if r.issuer != "" {
			r.keys = keys.register(r.issuer, "", r.timeout)
		}
	}
	if h := r.payloadHeader; h != "" && !validOutputHeader(h) {
		bad("outputPayloadToHeader", "%q is not a header name Palisade may set", h)
	}
	seen := map[string]bool{}
	for j, c := range jr.GetOutputClaimToHeaders() {
		h := http.CanonicalHeaderKey(c.GetHeader())
		switch {
		case !validOutputHeader(c.GetHeader()):
			bad(fmt.Sprintf("outputClaimToHeaders[%d].header", j), "%q is not a header name Palisade may set", c.GetHeader())
		case seen[h]:
			bad(fmt.Sprintf("outputClaimToHeaders[%d].header", j), "%q is set twice", c.GetHeader())
		case c.GetClaim() == "":
			bad(fmt.Sprintf("outputClaimToHeaders[%d].claim", j), "required")
		default:
			seen[h] = true
			r.claimHeaders = append(r.claimHeaders, claimHeader{header: c.GetHeader(), claim: strings.Split(c.GetClaim(), ".")})
		}
	}
	var ls []*location
	for j, h := range jr.GetFromHeaders() {
		if !httpguts.ValidHeaderFieldName(h.GetName()) {
			bad(fmt.Sprintf("fromHeaders[%d].name", j), "%q is not a header name", h.GetName())
			continue
		}
		ls = append(ls, &location{kind: fromHeader, name: http.CanonicalHeaderKey(h.GetName()), prefix: h.GetPrefix()})
	}
	for j, q := range jr.GetFromParams() {
		if q == "" {
			bad(fmt.Sprintf("fromParams[%d]", j), "empty")
			continue
		}
		ls = append(ls, &location{kind: fromParam, name: q})
	}
	for j, c := range jr.GetFromCookies() {
		if c == "" || strings.ContainsAny(c, "=; \t") {
			bad(fmt.Sprintf("fromCookies[%d]", j), "%q is not a cookie name", c)
			continue
		}
		ls = append(ls, &location{kind: fromCookie, name: c})
	}
	if len(jr.GetFromHeaders())+len(jr.GetFromParams())+len(jr.GetFromCookies()) == 0 {
		ls = []*location{
			{kind: fromHeader, name: DefaultHeader, prefix: DefaultHeaderPrefix},
			{kind: fromParam, name: DefaultParam},
		}
	}
	for _, l := range ls {
		r.locations = append(r.locations, l.String())
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return r, ls, nil
}

// validOutputHeader refuses names that are not header names, and the ones
// that would change how the request is framed or routed.
func validOutputHeader(h string) bool {
	if !httpguts.ValidHeaderFieldName(h) {
		return false
	}
	switch http.CanonicalHeaderKey(h) {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Keep-Alive", "Proxy-Connection":
		return false
	}
	return true
}

// sanitizeAudience drops a http:// or https:// scheme and a trailing slash,
// as Envoy does before comparing audiences.
func sanitizeAudience(a string) string {
	if s, ok := strings.CutPrefix(a, "http://"); ok {
		a = s
	} else if s, ok := strings.CutPrefix(a, "https://"); ok {
		a = s
	}
	return strings.TrimSuffix(a, "/")
}

// RuleInfo describes one compiled rule, for `palisade proxy-config jwt`.
type RuleInfo struct {
	Policy                string       `json:"policy"` // namespace/name
	Index                 int          `json:"index"`  // position in jwtRules
	Issuer                string       `json:"issuer"`
	Audiences             []string     `json:"audiences,omitempty"`
	Locations             []string     `json:"locations"` // "header Authorization: Bearer ", "param access_token", "cookie session"
	ForwardOriginalToken  bool         `json:"forwardOriginalToken,omitempty"`
	OutputPayloadToHeader string       `json:"outputPayloadToHeader,omitempty"`
	OutputClaimToHeaders  []string     `json:"outputClaimToHeaders,omitempty"` // "header=claim"
	Timeout               string       `json:"timeout"`
	KeySet                KeySetStatus `json:"keySet"`
}

// Rules describes the compiled rules, in evaluation order.
func (a *Authenticator) Rules() []RuleInfo {
	out := make([]RuleInfo, 0, len(a.rules))
	for _, r := range a.rules {
		ri := RuleInfo{
			Policy: r.policy, Index: r.index, Issuer: r.issuer, Locations: r.locations,
			ForwardOriginalToken: r.forward, OutputPayloadToHeader: r.payloadHeader,
			Timeout: r.timeout.String(), KeySet: r.keys.status(),
		}
		for aud := range r.audiences {
			ri.Audiences = append(ri.Audiences, aud)
		}
		sort.Strings(ri.Audiences)
		for _, ch := range r.claimHeaders {
			ri.OutputClaimToHeaders = append(ri.OutputClaimToHeaders, ch.header+"="+strings.Join(ch.claim, "."))
		}
		out = append(out, ri)
	}
	return out
}
