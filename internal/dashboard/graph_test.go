package dashboard

import (
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/telemetry"
)

// staticMesh is a Mesh of fixed values.
type staticMesh struct {
	workloads []*controlplane.Workload
	proxies   []controlplane.ProxyStatus
	snap      *config.Snapshot
}

func (m staticMesh) Workloads() []*controlplane.Workload { return m.workloads }
func (m staticMesh) Proxies() []controlplane.ProxyStatus { return m.proxies }
func (m staticMesh) Snapshot() *config.Snapshot          { return m.snap }

func peerAuth(ns, name string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode) *config.Resource {
	return &config.Resource{Kind: config.KindPeerAuthentication, Meta: config.Meta{Namespace: ns, Name: name},
		Spec: &securityv1beta1.PeerAuthentication{Mtls: &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}}}
}

func workshopMesh(pas ...*config.Resource) staticMesh {
	w := func(name string) *controlplane.Workload {
		return &controlplane.Workload{Key: controlplane.WorkloadKey{Namespace: "shop", Name: name}, Labels: map[string]string{"app": name},
			ServiceAccount: name + "-sa", Service: name, Ports: []config.WorkloadPort{{Name: "http", Number: 80, Protocol: "HTTP"}}}
	}
	return staticMesh{
		workloads: []*controlplane.Workload{w("front"), w("back")},
		proxies: []controlplane.ProxyStatus{{ID: "shop/front", Connected: true}, {ID: "shop/back", Connected: true},
			{ID: "istio-system/istio-ingressgateway", Identity: "spiffe://cluster.local/ns/istio-system/sa/gw", Connected: true}},
		snap: &config.Snapshot{Mesh: config.DefaultMesh(), Resources: pas},
	}
}

const (
	frontID = "spiffe://cluster.local/ns/shop/sa/front-sa"
	gwID    = "spiffe://cluster.local/ns/istio-system/sa/gw"
)

func rec(workload, src string, mtls bool, code int, decision string, d time.Duration) Record {
	ns, name, _ := cutSlash(workload)
	return Record{Workload: workload, Entry: telemetry.Entry{Start: time.Unix(1000, 0), Duration: d, Protocol: "http", Direction: telemetry.Inbound,
		SourcePrincipal: src, MTLS: mtls, ResponseCode: code, Decision: decision, DestinationNamespace: ns, DestinationWorkload: name, DownstreamRemote: "127.0.0.1:5000"}}
}

func cutSlash(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestBuildGraph(t *testing.T) {
	strict := peerAuth("istio-system", "default", securityv1beta1.PeerAuthentication_MutualTLS_STRICT)
	permissive := peerAuth("shop", "relaxed", securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE)
	backOnly := peerAuth("shop", "back-relaxed", securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE)
	backOnly.Spec.(*securityv1beta1.PeerAuthentication).Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "back"}}
	ms := time.Millisecond
	tests := []struct {
		name      string
		mesh      staticMesh
		records   []Record
		wantState string
		wantPlain int
		// edges: "source>destination" → mtls; every other edge is unwanted
		wantEdges map[string]string
		check     func(t *testing.T, g Graph)
	}{
		{
			name: "STRICT, every edge mTLS", mesh: workshopMesh(strict),
			records: []Record{
				rec("shop/front", gwID, true, 200, "", 2*ms),
				rec("shop/back", frontID, true, 200, "ALLOW", 3*ms),
				rec("shop/back", frontID, true, 503, "ALLOW", 9*ms),
				rec("shop/back", frontID, true, 403, "DENY", 1*ms),
			},
			wantState: "STRICT",
			wantEdges: map[string]string{"istio-system/istio-ingressgateway>shop/front": "mtls", "shop/front>shop/back": "mtls"},
			check: func(t *testing.T, g Graph) {
				for _, e := range g.Edges {
					if e.Destination != "shop/back" {
						continue
					}
					if e.Requests != 3 || e.Denied != 1 || e.ErrorRatio < 0.33 || e.ErrorRatio > 0.34 || e.P99Millis != 9 {
						t.Errorf("front>back: %+v", e)
					}
				}
			},
		},
		{
			name: "a plaintext client under PERMISSIVE", mesh: workshopMesh(strict, backOnly),
			records: []Record{
				rec("shop/back", frontID, true, 200, "", ms),
				rec("shop/back", "", false, 200, "", ms),
			},
			wantState: "PARTIAL", wantPlain: 1,
			wantEdges: map[string]string{"shop/front>shop/back": "mtls", "unknown>shop/back": "plaintext"},
			check: func(t *testing.T, g Graph) {
				var found bool
				for _, n := range g.Nodes {
					found = found || n.Kind == KindUnknown
				}
				if !found {
					t.Error("no node for the unknown client")
				}
			},
		},
		{
			name: "one caller, some plaintext", mesh: workshopMesh(permissive),
			records: []Record{
				rec("shop/back", frontID, true, 200, "", ms),
				{Workload: "shop/back", Entry: telemetry.Entry{Direction: telemetry.Inbound, SourcePrincipal: frontID, MTLS: false, Start: time.Unix(1000, 0)}},
			},
			wantState: "DISABLED", wantPlain: 1,
			wantEdges: map[string]string{"shop/front>shop/back": "mixed"},
		},
		{
			name: "traffic into the gateway is ingress, not a plaintext mesh edge", mesh: workshopMesh(strict),
			records:   []Record{rec("istio-system/istio-ingressgateway", "", true, 200, "", ms)},
			wantState: "STRICT",
			wantEdges: map[string]string{"unknown>istio-system/istio-ingressgateway": "ingress"},
		},
		{
			name: "outbound records do not make edges", mesh: workshopMesh(strict),
			records:   []Record{{Workload: "shop/front", Entry: telemetry.Entry{Direction: telemetry.Outbound, SourcePrincipal: frontID, Start: time.Unix(1000, 0)}}},
			wantState: "STRICT",
			wantEdges: map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := BuildGraph(tc.mesh, RecordSlice(tc.records), time.Minute)
			if g.TLS.State != tc.wantState || g.TLS.PlaintextEdges != tc.wantPlain {
				t.Errorf("masthead %s with %d plaintext edges, want %s with %d", g.TLS.State, g.TLS.PlaintextEdges, tc.wantState, tc.wantPlain)
			}
			got := map[string]string{}
			for _, e := range g.Edges {
				got[e.Source+">"+e.Destination] = e.MTLS
			}
			if len(got) != len(tc.wantEdges) {
				t.Errorf("edges %v, want %v", got, tc.wantEdges)
			}
			for k, v := range tc.wantEdges {
				if got[k] != v {
					t.Errorf("edge %s: %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			if tc.check != nil {
				tc.check(t, g)
			}
		})
	}
}
