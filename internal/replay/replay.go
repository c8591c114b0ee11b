package replay

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/authz"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/telemetry"
)

// Kinds of change.
const (
	AllowedToDenied = "allowed→denied"
	DeniedToAllowed = "denied→allowed"
	// StrictReset is plaintext that got through and that STRICT mTLS
	// would now reset.
	StrictReset = "plaintext STRICT would reset"
)

// Change is one recorded request whose decision would differ.
type Change struct {
	Kind  string          `json:"kind"`
	Entry telemetry.Entry `json:"entry"`
	// Recorded is the decision when the entry was recorded; Was is the
	// decision under the config in force now.
	Recorded string `json:"recorded"`
	Was      string `json:"was"`
	// Now is the decision under the proposal, Policy what decides it.
	Now    string `json:"now"`
	Policy string `json:"policy,omitempty"`
	Reason string `json:"reason"`
}

// Result is a replay's outcome.
type Result struct {
	Replayed int      `json:"replayed"`
	Skipped  int      `json:"skipped"`
	Changes  []Change `json:"changes"`
	// Notes say what the replay could not know (headers are not
	// recorded, an ext_authz answer cannot be replayed).
	Notes []string `json:"notes,omitempty"`
}

// Overlay returns cur with proposed in it: a proposed resource replaces
// the one of the same kind, namespace and name, or is added.
func Overlay(cur *config.Snapshot, proposed []*config.Resource) *config.Snapshot {
	byKey := map[config.Key]*config.Resource{}
	for _, r := range proposed {
		byKey[r.Key()] = r
	}
	out := &config.Snapshot{Version: cur.Version + 1, Mesh: cur.Mesh, MeshFile: cur.MeshFile}
	for _, r := range cur.Resources {
		if _, ok := byKey[r.Key()]; !ok {
			out.Resources = append(out.Resources, r)
		}
	}
	out.Resources = append(out.Resources, proposed...)
	config.SortResources(out.Resources)
	return out
}

// engine is one workload's compiled config.
type engine struct {
	authz *authz.Engine
	peer  *authn.Resolver
}

// engines compiles a snapshot per workload, once each.
type engines struct {
	snap     *config.Snapshot
	policies []authz.Policy
	byKey    map[string]*engine
}

func newEngines(snap *config.Snapshot) *engines {
	e := &engines{snap: snap, byKey: map[string]*engine{}}
	for _, r := range snap.OfKind(config.KindAuthorizationPolicy) {
		e.policies = append(e.policies, authz.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: r.Spec.(*securityv1beta1.AuthorizationPolicy)})
	}
	return e
}

func (es *engines) of(w *controlplane.Workload) (*engine, error) {
	key := w.Key.String()
	if e := es.byKey[key]; e != nil {
		return e, nil
	}
	a, err := authz.Compile(es.policies, w.Ref(), authz.Options{RootNamespace: es.snap.Mesh.GetRootNamespace()})
	if err != nil {
		return nil, fmt.Errorf("replay: %s: %w", key, err)
	}
	e := &engine{authz: a, peer: controlplane.PeerResolver(es.snap, w.Ref())}
	es.byKey[key] = e
	return e, nil
}

// Run replays the inbound entries against the config in force (current)
// and against the proposal, and lists the entries whose decision would
// differ: what applying the proposal changes now, whatever config was in
// force when they were recorded. Entries of workloads the registry does
// not list (the gateway among them) are skipped and counted.
func Run(current, proposed *config.Snapshot, workloads []*controlplane.Workload, entries []telemetry.Entry) (*Result, error) {
	byKey := map[string]*controlplane.Workload{}
	for _, w := range workloads {
		byKey[w.Key.String()] = w
	}
	cur, prop := newEngines(current), newEngines(proposed)
	res := &Result{Changes: []Change{}}
	notes := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		if e.Direction != telemetry.Inbound {
			continue
		}
		w := byKey[e.DestinationNamespace+"/"+e.DestinationWorkload]
		if w == nil {
			res.Skipped++
			notes["requests to workloads outside the registry (the ingress gateway among them) are not replayed"] = true
			continue
		}
		ce, err := cur.of(w)
		if err != nil {
			return nil, err
		}
		pe, err := prop.of(w)
		if err != nil {
			return nil, err
		}
		res.Replayed++
		was, _, _, note1 := ce.decide(e)
		now, policy, reason, note2 := pe.decide(e)
		for _, n := range []string{note1, note2} {
			if n != "" {
				notes[n] = true
			}
		}
		wasDenied, nowDenied := was != "ALLOW", now != "ALLOW"
		var kind string
		switch {
		case !wasDenied && nowDenied && strings.HasPrefix(policy, "PeerAuthentication"):
			kind = StrictReset
		case !wasDenied && nowDenied:
			kind = AllowedToDenied
		case wasDenied && !nowDenied:
			kind = DeniedToAllowed
		default:
			continue
		}
		res.Changes = append(res.Changes, Change{Kind: kind, Entry: *e, Recorded: recorded(e.Decision), Was: was, Now: now, Policy: policy, Reason: reason})
	}
	if len(prop.policies) > 0 {
		notes["request headers, the TLS server name, the destination IP and JWT claims other than iss and sub are not recorded: conditions on them see none"] = true
	}
	for n := range notes {
		res.Notes = append(res.Notes, n)
	}
	sort.Strings(res.Notes)
	return res, nil
}

// recorded names a recorded decision; a request no policy decided was
// allowed.
func recorded(d string) string {
	if d == "" {
		return "ALLOW"
	}
	return d
}

// decide is a config's decision for one recorded entry, in the order
// a sidecar takes them: peer authentication, request authentication,
// CUSTOM, then DENY and ALLOW.
func (eng *engine) decide(e *telemetry.Entry) (decision, policy, reason, note string) {
	port := e.DestinationPort
	if pd := eng.peer.Mode(port); !e.MTLS && pd.Mode == authn.Strict {
		by := pd.Source
		if by == "" {
			by = "mesh default"
		}
		return "DENY", "PeerAuthentication " + by, "plaintext is reset by STRICT mTLS", ""
	}
	if e.Decision == "JWT-DENY" {
		return "JWT-DENY", "", "request authentication refused it: " + e.AuthError, "a request refused by request authentication stays refused: RequestAuthentication is not replayed"
	}
	req := Request(e)
	if provider, ref, ok := eng.authz.Custom(req); ok {
		if strings.HasPrefix(e.Decision, "CUSTOM-DENY") {
			return "CUSTOM-DENY", ref.String(), "the extension provider " + provider + " refused it when recorded", "an ext_authz answer cannot be replayed; the recorded one is kept"
		}
		note = "an ext_authz answer cannot be replayed; the recorded one is kept"
	}
	d := eng.authz.Evaluate(req)
	if !d.Allowed {
		return "DENY", d.Policy.String(), d.Reason, note
	}
	return "ALLOW", d.Policy.String(), d.Reason, note
}

// Request is the authorization request a recorded entry stands for. What
// is not recorded (headers, JWT claims other than iss and sub, the
// destination IP) is absent.
func Request(e *telemetry.Entry) *authz.Request {
	req := &authz.Request{DestinationPort: e.DestinationPort, IsHTTP: e.Protocol != telemetry.ProtocolTCP,
		Host: e.Authority, Method: e.Method, Path: e.Path, DestinationIP: netip.MustParseAddr("127.0.0.1")}
	if h, _, err := net.SplitHostPort(e.DownstreamRemote); err == nil {
		req.SourceIP, _ = netip.ParseAddr(h)
	}
	req.RemoteIP = req.SourceIP
	if e.MTLS {
		req.Principal = strings.TrimPrefix(e.SourcePrincipal, "spiffe://")
	}
	if e.RequestPrincipal != "" {
		req.Auth = &authz.AuthInfo{Principal: e.RequestPrincipal, Claims: map[string]any{}}
		if iss, sub, ok := strings.Cut(e.RequestPrincipal, "/"); ok {
			req.Auth.Claims["iss"], req.Auth.Claims["sub"] = iss, sub
		}
	}
	return req
}

// denied reports whether a recorded decision refused the request.
func denied(decision string) bool { return strings.Contains(decision, "DENY") }
