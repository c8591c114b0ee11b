package dashboard

import (
	"sort"
	"strings"
	"time"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/telemetry"
)

// Node kinds.
const (
	KindWorkload = "workload"
	KindGateway  = "gateway"
	KindUnknown  = "unknown" // a client without a mesh identity
)

// Node is a workload, the ingress gateway, or the plaintext clients the
// mesh cannot name.
type Node struct {
	ID        string `json:"id"` // namespace/name, or "unknown"
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Service   string `json:"service,omitempty"`
	SpiffeID  string `json:"spiffeId,omitempty"`
	MTLSMode  string `json:"mtlsMode,omitempty"` // its first port's effective mode
}

// Edge is traffic from one node to another in the window.
type Edge struct {
	Source      string  `json:"source"`
	Destination string  `json:"destination"`
	Requests    int     `json:"requests"`
	Rate        float64 `json:"rate"`       // requests per second over the window
	ErrorRatio  float64 `json:"errorRatio"` // 5xx and failed connections over all
	Denied      int     `json:"denied"`
	P99Millis   float64 `json:"p99Ms"`
	// MTLS is "mtls" when every request was mutual TLS, "plaintext" when
	// none was, "mixed" otherwise; "ingress" for an Ingress edge.
	MTLS string `json:"mtls"`
	// Ingress marks traffic from outside into the gateway, whose TLS the
	// Gateway resource sets, not PeerAuthentication.
	Ingress bool `json:"ingress,omitempty"`
}

// MeshTLS is the masthead's answer, as Kiali's lock gives it.
type MeshTLS struct {
	// State is "STRICT" (every port of every workload), "PARTIAL" or
	// "DISABLED" (no port STRICT).
	State           string   `json:"state"`
	StrictPorts     int      `json:"strictPorts"`
	Ports           int      `json:"ports"`
	PlaintextEdges  int      `json:"plaintextEdges"`
	NotStrict       []string `json:"notStrict,omitempty"` // workload:port (mode, set by)
	WindowSeconds   float64  `json:"windowSeconds"`
	RecordsInWindow int      `json:"recordsInWindow"`
}

// Graph is the service graph of a window.
type Graph struct {
	Nodes []Node  `json:"nodes"`
	Edges []Edge  `json:"edges"`
	TLS   MeshTLS `json:"tls"`
}

// Mesh is what the dashboard reads of the control plane;
// *controlplane.Server is one.
type Mesh interface {
	ProxySource
	Workloads() []*controlplane.Workload
	Snapshot() *config.Snapshot
}

// names maps principals to the nodes that run as them.
type names struct {
	byPrincipal map[string]string // spiffe://td/ns/x/sa/y → node id (when one)
}

// Records yields records: it calls f with each, without copying.
type Records func(f func(workload string, e *telemetry.Entry))

// RecordSlice yields the records of a slice.
func RecordSlice(rs []Record) Records {
	return func(f func(string, *telemetry.Entry)) {
		for i := range rs {
			f(rs[i].Workload, &rs[i].Entry)
		}
	}
}

// BuildGraph works out the graph from the records of a window.
func BuildGraph(m Mesh, records Records, window time.Duration) Graph {
	snap := m.Snapshot()
	td := snap.Mesh.GetTrustDomain()
	g := Graph{Nodes: []Node{}, Edges: []Edge{}, TLS: MeshTLS{WindowSeconds: window.Seconds()}}
	nm := names{byPrincipal: map[string]string{}}
	seen := map[string]bool{}
	dup := map[string]bool{}
	addPrincipal := func(p, id string) {
		if prev, ok := nm.byPrincipal[p]; ok && prev != id {
			dup[p] = true
		}
		nm.byPrincipal[p] = id
	}
	var pols []authn.Policy
	for _, r := range snap.OfKind(config.KindPeerAuthentication) {
		pols = append(pols, authn.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: peerSpec(r)})
	}
	for _, w := range m.Workloads() {
		id := w.Key.String()
		n := Node{ID: id, Kind: KindWorkload, Namespace: w.Key.Namespace, Name: w.Key.Name, Service: w.Service,
			SpiffeID: spiffeID(td, w.Key.Namespace, w.ServiceAccount)}
		res := authn.Resolve(pols, w.Ref(), snap.Mesh.GetRootNamespace())
		for i, p := range w.Ports {
			d := res.Mode(p.Number)
			g.TLS.Ports++
			if d.Mode == authn.Strict {
				g.TLS.StrictPorts++
			} else {
				by := d.Source
				if by == "" {
					by = "mesh default"
				}
				g.TLS.NotStrict = append(g.TLS.NotStrict, id+":"+itoa(int(p.Number))+" ("+d.Mode.String()+", "+by+")")
			}
			if i == 0 {
				n.MTLSMode = d.Mode.String()
			}
		}
		g.Nodes = append(g.Nodes, n)
		seen[id] = true
		addPrincipal(n.SpiffeID, id)
	}
	for _, p := range m.Proxies() {
		if seen[p.ID] {
			continue
		}
		ns, name, _ := strings.Cut(p.ID, "/")
		g.Nodes = append(g.Nodes, Node{ID: p.ID, Kind: KindGateway, Namespace: ns, Name: name, SpiffeID: p.Identity})
		seen[p.ID] = true
		addPrincipal(p.Identity, p.ID)
	}
	for p := range dup {
		delete(nm.byPrincipal, p)
	}
	switch {
	case g.TLS.Ports > 0 && g.TLS.StrictPorts == g.TLS.Ports:
		g.TLS.State = "STRICT"
	case g.TLS.StrictPorts > 0:
		g.TLS.State = "PARTIAL"
	default:
		g.TLS.State = "DISABLED"
	}

	type acc struct {
		Edge
		mtls, plain int
		durs        []time.Duration
		errs        int
	}
	edges := map[[2]string]*acc{}
	gateways := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Kind == KindGateway {
			gateways[n.ID] = true
		}
	}
	records(func(workload string, r *telemetry.Entry) {
		g.TLS.RecordsInWindow++
		if r.Direction != telemetry.Inbound {
			return // the destination's record of the same request counts
		}
		src := nm.source(r)
		if src != KindUnknown && !seen[src] {
			g.Nodes = append(g.Nodes, Node{ID: src, Kind: KindWorkload, Name: src, SpiffeID: r.SourcePrincipal})
			seen[src] = true
		}
		if src == KindUnknown && !seen[KindUnknown] {
			g.Nodes = append(g.Nodes, Node{ID: KindUnknown, Kind: KindUnknown, Name: "unknown"})
			seen[KindUnknown] = true
		}
		k := [2]string{src, workload}
		a := edges[k]
		if a == nil {
			a = &acc{Edge: Edge{Source: src, Destination: workload, Ingress: gateways[workload]}}
			edges[k] = a
		}
		a.Requests++
		if r.MTLS {
			a.mtls++
		} else {
			a.plain++
		}
		if r.ResponseCode >= 500 || (r.Protocol == telemetry.ProtocolTCP && r.ResponseFlags != "" && !isDenied(r)) {
			a.errs++
		}
		if isDenied(r) {
			a.Denied++
		}
		a.durs = append(a.durs, r.Duration)
	})
	for _, a := range edges {
		e := a.Edge
		e.Rate = float64(e.Requests) / window.Seconds()
		e.ErrorRatio = float64(a.errs) / float64(e.Requests)
		e.P99Millis = p99(a.durs)
		switch {
		case e.Ingress:
			// The gateway's record says whether its upstream leg was
			// mTLS; its caller's TLS is the Gateway resource's.
			e.MTLS = "ingress"
		case a.plain == 0:
			e.MTLS = "mtls"
		case a.mtls == 0:
			e.MTLS = "plaintext"
		default:
			e.MTLS = "mixed"
		}
		if e.MTLS == "plaintext" || e.MTLS == "mixed" {
			g.TLS.PlaintextEdges++
		}
		g.Edges = append(g.Edges, e)
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	sort.Slice(g.Edges, func(i, j int) bool {
		if g.Edges[i].Source != g.Edges[j].Source {
			return g.Edges[i].Source < g.Edges[j].Source
		}
		return g.Edges[i].Destination < g.Edges[j].Destination
	})
	return g
}

// source names the node a record came from: the workload that runs as
// its peer's identity, the identity itself when several or none do, and
// "unknown" for plaintext.
func (nm names) source(r *telemetry.Entry) string {
	if r.SourcePrincipal == "" {
		return KindUnknown
	}
	if id, ok := nm.byPrincipal[r.SourcePrincipal]; ok {
		return id
	}
	return r.SourcePrincipal
}

// isDenied reports whether a record is a refusal by policy: authorization,
// request authentication, ext_authz, or STRICT mTLS resetting plaintext.
func isDenied(r *telemetry.Entry) bool {
	return strings.Contains(r.Decision, "DENY")
}

func p99(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := (len(ds)*99 + 99) / 100
	if i > len(ds) {
		i = len(ds)
	}
	return float64(ds[i-1].Microseconds()) / 1000
}
