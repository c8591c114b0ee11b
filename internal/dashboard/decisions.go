package dashboard

import (
	"strings"
	"time"

	"palisade.dev/palisade/internal/controlplane"
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
	jwtPolicy := map[string]string{} // workload → the RequestAuthentication that applies
	rs := d.collector.Records(f.Destination, f.Since)
	for i := len(rs) - 1; i >= 0; i-- {
		r := &rs[i]
		if r.Direction != "inbound" || r.Decision == "" || (!f.All && !isDenied(&r.Entry)) {
			continue
		}
		e := decisionOf(r)
		if e.Decision == "JWT-DENY" && e.PolicyRef == "" {
			e.PolicyRef = d.requestAuthn(jwtPolicy, r.Workload)
			if e.PolicyRef != "" && e.Policy == "" {
				e.Policy = "RequestAuthentication " + e.PolicyRef
			}
		}
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

// requestAuthn names a RequestAuthentication that applies to a
// workload, the most specific (the workload's, else its namespace's, else
// the mesh's: Istio applies them all together, so the feed links to the
// closest); "" when none applies or the workload is unknown. cache keeps
// the answers of one listing.
func (d *Dashboard) requestAuthn(cache map[string]string, workload string) string {
	if ref, ok := cache[workload]; ok {
		return ref
	}
	cache[workload] = ""
	key, err := controlplane.ParseWorkloadKey(workload)
	if err != nil {
		return ""
	}
	desc, err := controlplane.Describe(d.mesh.Snapshot(), d.mesh.Workloads(), key)
	if err != nil || len(desc.RequestAuthn) == 0 {
		return ""
	}
	rank := map[string]int{"workload": 0, "namespace": 1, "mesh": 2}
	best := desc.RequestAuthn[0]
	for _, p := range desc.RequestAuthn[1:] {
		if rank[p.Scope] < rank[best.Scope] {
			best = p
		}
	}
	cache[workload] = best.Name
	return best.Name
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
