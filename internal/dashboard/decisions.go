package dashboard

import (
	"strings"
	"time"
)

// Decision is one entry of the denials feed.
type Decision struct {
	Time        time.Time `json:"time"`
	Source      string    `json:"source"`      // principal, or the peer's address when plaintext
	Destination string    `json:"destination"` // namespace/name
	Port        uint32    `json:"port,omitempty"`
	Method      string    `json:"method,omitempty"`
	Path        string    `json:"path,omitempty"`
	Code        int       `json:"code,omitempty"`
	Decision    string    `json:"decision"`
	// Policy is what decided ("DENY workshop/deny-admin rule 0",
	// "PeerAuthentication istio-system/default"); PolicyRef is its
	// namespace/name and PolicyKind its kind, for a link to it.
	Policy     string `json:"policy,omitempty"`
	PolicyRef  string `json:"policyRef,omitempty"`
	PolicyKind string `json:"policyKind,omitempty"`
	AuthError  string `json:"authError,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
	MTLS       bool   `json:"mtls"`
}

// DecisionFilter narrows the feed. Every set field must match.
type DecisionFilter struct {
	Since time.Time
	// Query matches a request id exactly, or is a substring of the path,
	// the source or the policy.
	Query       string
	Destination string // namespace/name
	Source      string // substring of the source
	All         bool   // allowed requests too, not only denials
	Limit       int
}

// Decisions lists the recorded decisions, newest first.
func (d *Dashboard) Decisions(f DecisionFilter) []Decision {
	out := []Decision{}
	rs := d.collector.Records(f.Destination, f.Since)
	for i := len(rs) - 1; i >= 0; i-- {
		r := &rs[i]
		if r.Direction != "inbound" || r.Decision == "" || (!f.All && !isDenied(&r.Entry)) {
			continue
		}
		e := decisionOf(r)
		if f.Source != "" && !strings.Contains(e.Source, f.Source) {
			continue
		}
		if q := f.Query; q != "" && e.RequestID != q && !strings.Contains(e.Path, q) && !strings.Contains(e.Source, q) && !strings.Contains(e.Policy, q) {
			continue
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	return out
}

func decisionOf(r *Record) Decision {
	e := Decision{Time: r.Start, Source: r.SourcePrincipal, Destination: r.Workload, Port: r.DestinationPort, Method: r.Method, Path: r.Path,
		Code: r.ResponseCode, Decision: r.Decision, Policy: r.Policy, AuthError: r.AuthError, RequestID: r.RequestID, MTLS: r.MTLS}
	if e.Source == "" {
		e.Source = "plaintext " + r.DownstreamRemote
	}
	e.PolicyKind, e.PolicyRef = policyRef(r.Policy)
	if e.Decision == "JWT-DENY" && e.PolicyKind == "" {
		e.PolicyKind = "RequestAuthentication"
	}
	return e
}

// policyRef reads the policy's kind and namespace/name from a record's
// Policy: "DENY ns/name rule 0", "CUSTOM ns/name provider p",
// "PeerAuthentication ns/name".
func policyRef(p string) (kind, ref string) {
	p, _, _ = strings.Cut(p, ";") // an AUDIT policy follows the deciding one
	f := strings.Fields(p)
	if len(f) < 2 || !strings.Contains(f[1], "/") {
		return "", ""
	}
	if f[0] == "PeerAuthentication" {
		return "PeerAuthentication", f[1]
	}
	return "AuthorizationPolicy", f[1]
}
