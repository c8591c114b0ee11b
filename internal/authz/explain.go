package authz

import (
	"fmt"
	"strings"
)

// Explanation says how the engine reached a decision: every policy that
// applies to the workload, matched or not, and for each rule what failed.
// It is for operators (`palisade authz check`), not the hot path.
type Explanation struct {
	Decision Decision `json:"decision"`
	// CustomProvider and CustomPolicy are set when a CUSTOM policy matched:
	// the external authorizer is asked before Decision stands.
	CustomMatched  bool                `json:"customMatched,omitempty"`
	CustomProvider string              `json:"customProvider,omitempty"`
	CustomPolicy   PolicyRef           `json:"customPolicy,omitzero"`
	Policies       []PolicyExplanation `json:"policies"`
}

// PolicyExplanation is one applicable policy.
type PolicyExplanation struct {
	Policy   PolicyRef         `json:"policy"`             // Rule is the first matching rule, or -1
	Provider string            `json:"provider,omitempty"` // CUSTOM only
	Matched  bool              `json:"matched"`
	Note     string            `json:"note,omitempty"`
	Rules    []RuleExplanation `json:"rules,omitempty"`
}

// RuleExplanation is one rule of a policy.
type RuleExplanation struct {
	Index   int  `json:"index"`
	Matched bool `json:"matched"`
	// Failed lists the fields the request did not satisfy, with the value
	// the request had.
	Failed []string `json:"failed,omitempty"`
	// Ignored lists HTTP-only fields a DENY, AUDIT or CUSTOM rule ignored
	// because the connection is TCP.
	Ignored []string `json:"ignored,omitempty"`
	Note    string   `json:"note,omitempty"`
}

// Explain evaluates the request like Custom and Evaluate, recording why
// each applicable policy matched or not.
func (e *Engine) Explain(r *Request) Explanation {
	x := Explanation{Decision: e.Evaluate(r)}
	x.CustomProvider, x.CustomPolicy, x.CustomMatched = e.Custom(r)
	for _, list := range [][]*policy{e.custom, e.deny, e.allow, e.audit} {
		for _, p := range list {
			x.Policies = append(x.Policies, explainPolicy(p, r))
		}
	}
	return x
}

func explainPolicy(p *policy, r *Request) PolicyExplanation {
	pe := PolicyExplanation{Policy: p.ref, Provider: p.provider}
	if len(p.rules) == 0 {
		if p.ref.Action == ActionAllow {
			pe.Note = "no rules: allows nothing"
		} else {
			pe.Note = "no rules: matches nothing"
		}
	}
	for i, ru := range p.rules {
		var tr trace
		ok := ru.match(r, p.denyLike, &tr)
		re := RuleExplanation{Index: i, Matched: ok}
		if tr.tcpHTTP {
			re.Note = "ALLOW rule uses HTTP-only fields and the connection is TCP: never matches"
		}
		for _, f := range tr.failed {
			re.Failed = append(re.Failed, f.describe(r))
		}
		for _, f := range tr.ignored {
			re.Ignored = append(re.Ignored, f.name)
		}
		if ok && !pe.Matched {
			pe.Matched = true
			pe.Policy.Rule = i
		}
		pe.Rules = append(pe.Rules, re)
	}
	return pe
}

// describe says what the field wanted and what the request had.
func (f *field) describe(r *Request) string {
	var want []string
	if len(f.raw) > 0 {
		want = append(want, fmt.Sprintf("values %q", f.raw))
	}
	if len(f.rawNot) > 0 {
		want = append(want, fmt.Sprintf("notValues %q", f.rawNot))
	}
	return fmt.Sprintf("%s: want %s, request has %s", f.name, strings.Join(want, " and "), f.requestValue(r))
}

func (f *field) requestValue(r *Request) string {
	absent := "nothing"
	switch f.attr {
	case attrPrincipal, attrNamespace, attrServiceAccount, attrTrustDomain:
		if r.Principal == "" {
			return "no peer principal (plaintext connection)"
		}
		return fmt.Sprintf("principal %q", r.Principal)
	case attrSNI:
		if r.SNI == "" {
			return "no SNI"
		}
		return fmt.Sprintf("SNI %q", r.SNI)
	case attrSourceIP:
		return r.SourceIP.String()
	case attrRemoteIP:
		if r.RemoteIP.IsValid() {
			return r.RemoteIP.String()
		}
		return r.SourceIP.String()
	case attrDestIP:
		return r.DestinationIP.String()
	case attrDestPort:
		return fmt.Sprint(r.DestinationPort)
	case attrRequestPrincipal, attrAudiences, attrPresenter, attrClaim:
		if r.Auth == nil {
			return "no valid JWT"
		}
		switch f.attr {
		case attrRequestPrincipal:
			return fmt.Sprintf("%q", r.Auth.Principal)
		case attrAudiences:
			return fmt.Sprintf("%q", r.Auth.Audiences)
		case attrPresenter:
			return fmt.Sprintf("%q", r.Auth.Presenter)
		}
		if v := claimValue(r.Auth.Claims, f.claim); v != nil {
			return fmt.Sprintf("%v", v)
		}
		return absent
	case attrHeader:
		if sensitiveHeader(f.header) {
			return "a value not shown (credential header)"
		}
		if v := lookupHeader(r.Headers, f.header); v != nil {
			return fmt.Sprintf("%q", v)
		}
		return absent
	case attrHost:
		return fmt.Sprintf("%q", r.Host)
	case attrMethod:
		return fmt.Sprintf("%q", r.Method)
	case attrPath:
		return fmt.Sprintf("%q", pathForMatch(r.Path))
	}
	return absent
}

// sensitiveHeader reports headers whose values are credentials and must
// never reach a log or a terminal.
func sensitiveHeader(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key":
		return true
	}
	return false
}
