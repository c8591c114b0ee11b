package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

// Action is an AuthorizationPolicy action (ALLOW, DENY, AUDIT, CUSTOM).
type Action = securityv1beta1.AuthorizationPolicy_Action

// The actions, re-exported so callers need not import the Istio package.
const (
	ActionAllow  = securityv1beta1.AuthorizationPolicy_ALLOW
	ActionDeny   = securityv1beta1.AuthorizationPolicy_DENY
	ActionAudit  = securityv1beta1.AuthorizationPolicy_AUDIT
	ActionCustom = securityv1beta1.AuthorizationPolicy_CUSTOM
)

// Policy is one AuthorizationPolicy as declared by a user.
type Policy struct {
	Namespace string
	Name      string
	Spec      *securityv1beta1.AuthorizationPolicy
}

// Options tune compilation.
type Options struct {
	// RootNamespace is the mesh's root namespace (MeshConfig.rootNamespace);
	// policies there without selector apply mesh-wide. Empty means
	// config.DefaultRootNamespace.
	RootNamespace string
}

// AuthInfo is the result of request authentication (a validated JWT).
type AuthInfo struct {
	// Principal is Istio's request principal, "<iss>/<sub>".
	Principal string
	// Audiences is the token's aud claim.
	Audiences []string
	// Presenter is the token's azp claim.
	Presenter string
	// Claims is the token's payload, as decoded from JSON.
	Claims map[string]any
}

// Request is what the engine knows about a request or a TCP connection.
// The engine never modifies it.
type Request struct {
	// Connection attributes, always known. RemoteIP is the original client
	// address (X-Forwarded-For or PROXY protocol, as the gateway topology
	// says); when not valid, SourceIP is used for remote.ip.
	SourceIP        netip.Addr
	RemoteIP        netip.Addr
	DestinationIP   netip.Addr
	DestinationPort uint32

	// Principal is the peer identity in Istio's form
	// "cluster.local/ns/<ns>/sa/<sa>" (no "spiffe://"); empty when the
	// connection is plaintext. SNI is the TLS server name, empty when none.
	Principal string
	SNI       string

	// HTTP attributes; IsHTTP is false for TCP. Path is the normalized path
	// (see NormalizePath); anything from '?' or '#' on is ignored. Headers
	// should use canonical keys, as net/http produces.
	IsHTTP  bool
	Host    string
	Method  string
	Path    string
	Headers http.Header

	// Auth is nil when the request carries no valid JWT.
	Auth *AuthInfo
}

// PolicyRef names a policy and, for a match, the rule that matched
// (0-based; -1 when no rule is involved).
type PolicyRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Action    Action `json:"action"`
	Rule      int    `json:"rule"`
}

func (p PolicyRef) String() string {
	if p.Name == "" {
		return ""
	}
	if p.Rule < 0 {
		return fmt.Sprintf("%s %s/%s", p.Action, p.Namespace, p.Name)
	}
	return fmt.Sprintf("%s %s/%s rule %d", p.Action, p.Namespace, p.Name, p.Rule)
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Policy is the DENY policy that denied, or the ALLOW policy that
	// allowed; zero when the decision came from the defaults.
	Policy PolicyRef `json:"policy"`
	// Audited reports whether an AUDIT policy matched; Audit is the first
	// one that did.
	Audited bool      `json:"audited,omitempty"`
	Audit   PolicyRef `json:"audit,omitzero"`
	// Reason says why, in a few words, for logs (never for the peer).
	Reason string `json:"reason"`
}

// Reasons a Decision can carry.
const (
	ReasonDenyMatched  = "matched a DENY policy"
	ReasonAllowMatched = "matched an ALLOW policy"
	ReasonNoAllowMatch = "no ALLOW policy matched"
	ReasonNoAllow      = "no ALLOW policy applies"
)

// Engine is the compiled set of policies that apply to one workload. It is
// immutable and safe for concurrent use.
type Engine struct {
	workload config.WorkloadRef
	provider string
	custom   []*policy
	deny     []*policy
	allow    []*policy
	audit    []*policy
}

// Compile keeps the policies that apply to workload w (config.Applies with
// Istio's scoping rules) and compiles them. Every problem in an applicable
// policy is reported; nothing is silently dropped. A gateway is compiled
// the same way: give its labels and w.Gateway.
func Compile(policies []Policy, w config.WorkloadRef, opts Options) (*Engine, error) {
	root := opts.RootNamespace
	if root == "" {
		root = config.DefaultRootNamespace
	}
	e := &Engine{workload: w}
	var errs []error
	for i := range policies {
		p := &policies[i]
		if p.Spec == nil {
			errs = append(errs, fmt.Errorf("authz: compile %s/%s: no spec", p.Namespace, p.Name))
			continue
		}
		if !config.Applies(p.Namespace, p.Spec, w, root) {
			continue
		}
		cp, err := compilePolicy(p, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch cp.ref.Action {
		case ActionCustom:
			if e.provider != "" && e.provider != cp.provider {
				errs = append(errs, fmt.Errorf("authz: compile %s/%s: CUSTOM provider %q: workload already uses provider %q (one provider per workload)",
					p.Namespace, p.Name, cp.provider, e.provider))
				continue
			}
			e.provider = cp.provider
			e.custom = append(e.custom, cp)
		case ActionDeny:
			e.deny = append(e.deny, cp)
		case ActionAudit:
			e.audit = append(e.audit, cp)
		default:
			e.allow = append(e.allow, cp)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, list := range [][]*policy{e.custom, e.deny, e.allow, e.audit} {
		sortPolicies(list, root)
	}
	return e, nil
}

// Validate compiles every policy as if it applied, and reports every
// problem. It is what `palisade analyze` runs.
func Validate(policies []Policy, opts Options) error {
	var errs []error
	for i := range policies {
		p := &policies[i]
		if p.Spec == nil {
			errs = append(errs, fmt.Errorf("authz: validate %s/%s: no spec", p.Namespace, p.Name))
			continue
		}
		if _, err := compilePolicy(p, opts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sortPolicies orders root-namespace policies first, then by namespace and
// name, so that the policy reported for a decision is deterministic.
func sortPolicies(ps []*policy, root string) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].ref, ps[j].ref
		if (a.Namespace == root) != (b.Namespace == root) {
			return a.Namespace == root
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

// Workload returns the workload the engine was compiled for.
func (e *Engine) Workload() config.WorkloadRef { return e.workload }

// Provider returns the CUSTOM extension provider the workload uses, or "".
func (e *Engine) Provider() string { return e.provider }

// Custom reports whether a CUSTOM policy matches the request; if so the
// caller must ask provider's external authorizer before calling Evaluate,
// and deny when it denies. A CUSTOM allow never overrides DENY or ALLOW.
func (e *Engine) Custom(r *Request) (provider string, ref PolicyRef, matched bool) {
	for _, p := range e.custom {
		if i := p.match(r, nil); i >= 0 {
			ref := p.ref
			ref.Rule = i
			return p.provider, ref, true
		}
	}
	return "", PolicyRef{}, false
}

// Evaluate decides the request with DENY then ALLOW policies; AUDIT
// policies mark the decision without changing it. It does not allocate.
func (e *Engine) Evaluate(r *Request) Decision {
	var d Decision
	for _, p := range e.audit {
		if i := p.match(r, nil); i >= 0 {
			d.Audited = true
			d.Audit = p.ref
			d.Audit.Rule = i
			break
		}
	}
	for _, p := range e.deny {
		if i := p.match(r, nil); i >= 0 {
			d.Policy = p.ref
			d.Policy.Rule = i
			d.Reason = ReasonDenyMatched
			return d
		}
	}
	if len(e.allow) == 0 {
		d.Allowed = true
		d.Reason = ReasonNoAllow
		return d
	}
	for _, p := range e.allow {
		if i := p.match(r, nil); i >= 0 {
			d.Allowed = true
			d.Policy = p.ref
			d.Policy.Rule = i
			d.Reason = ReasonAllowMatched
			return d
		}
	}
	d.Reason = ReasonNoAllowMatch
	return d
}

// MarshalJSON writes the action by name (ALLOW, DENY, AUDIT, CUSTOM).
func (p PolicyRef) MarshalJSON() ([]byte, error) {
	type ref struct {
		Namespace string `json:"namespace,omitempty"`
		Name      string `json:"name,omitempty"`
		Action    string `json:"action,omitempty"`
		Rule      int    `json:"rule"`
	}
	r := ref{Namespace: p.Namespace, Name: p.Name, Rule: p.Rule}
	if p.Name != "" {
		r.Action = p.Action.String()
	}
	return json.Marshal(r)
}
