package simulate

import (
	"fmt"
	"sort"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/dashboard"
	"palisade.dev/palisade/internal/telemetry"
)

// Mesh is a simulated mesh; it is a dashboard.Mesh.
type Mesh struct {
	workloads []*controlplane.Workload
	proxies   []controlplane.ProxyStatus
	snap      *config.Snapshot
}

// New makes n workloads spread over namespaces, STRICT mesh-wide; every
// two workloads of a namespace are two versions of one service.
func New(n, namespaces int) *Mesh {
	m := &Mesh{snap: &config.Snapshot{Version: 1, Mesh: config.DefaultMesh(), Resources: []*config.Resource{{
		APIVersion: "security.istio.io/v1", Kind: config.KindPeerAuthentication,
		Meta: config.Meta{Namespace: config.DefaultRootNamespace, Name: "default"},
		Spec: &securityv1beta1.PeerAuthentication{Mtls: &securityv1beta1.PeerAuthentication_MutualTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_STRICT}},
	}}}}
	for i := range n {
		ns := fmt.Sprintf("ns-%02d", i%namespaces)
		k := i / namespaces // the workload's place in its namespace
		svc, version := fmt.Sprintf("svc-%02d-%03d", i%namespaces, k/2), fmt.Sprintf("v%d", k%2+1)
		name := svc + "-" + version
		m.workloads = append(m.workloads, &controlplane.Workload{
			Key: controlplane.WorkloadKey{Namespace: ns, Name: name}, Labels: map[string]string{"app": svc, "version": version},
			ServiceAccount: name, Service: svc, Ports: []config.WorkloadPort{{Name: "http", Number: 8080, Protocol: "HTTP"}},
		})
		m.proxies = append(m.proxies, controlplane.ProxyStatus{ID: ns + "/" + name, Identity: principal(ns, name), Connected: true})
	}
	return m
}

func principal(ns, sa string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa }

// Records makes per calls from each version of a service to each
// version of the next service of its namespace (a chain of services per
// namespace), ending at now; every tenth call is denied by a policy.
func (m *Mesh) Records(now time.Time, per int) []dashboard.Record {
	type svcKey struct{ ns, svc string }
	var order []svcKey
	versions := map[svcKey][]*controlplane.Workload{}
	for _, w := range m.workloads {
		k := svcKey{w.Key.Namespace, w.Service}
		if versions[k] == nil {
			order = append(order, k)
		}
		versions[k] = append(versions[k], w)
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].ns != order[j].ns {
			return order[i].ns < order[j].ns
		}
		return order[i].svc < order[j].svc
	})
	var out []dashboard.Record
	for i := 1; i < len(order); i++ {
		if order[i].ns != order[i-1].ns {
			continue
		}
		for _, src := range versions[order[i-1]] {
			for _, dst := range versions[order[i]] {
				for j := range per {
					e := telemetry.Entry{Start: now.Add(-time.Duration(j) * time.Second), Duration: time.Duration(1+j) * time.Millisecond,
						Protocol: telemetry.ProtocolHTTP, Direction: telemetry.Inbound, MTLS: true,
						SourcePrincipal: principal(src.Key.Namespace, src.ServiceAccount), DestinationPrincipal: principal(dst.Key.Namespace, dst.ServiceAccount),
						DestinationNamespace: dst.Key.Namespace, DestinationWorkload: dst.Key.Name, DestinationPort: 8080,
						Method: "GET", Path: fmt.Sprintf("/items/%d", j), ResponseCode: 200, Decision: "ALLOW", DownstreamRemote: "10.0.0.1:40000"}
					if j%10 == 9 {
						e.ResponseCode, e.Decision, e.Policy = 403, "DENY", "DENY "+dst.Key.Namespace+"/deny-some rule 0"
					}
					out = append(out, dashboard.Record{Workload: dst.Key.String(), Entry: e})
				}
			}
		}
	}
	return out
}

// Workloads, Proxies and Snapshot make Mesh a dashboard.Mesh.
func (m *Mesh) Workloads() []*controlplane.Workload { return m.workloads }
func (m *Mesh) Proxies() []controlplane.ProxyStatus { return m.proxies }
func (m *Mesh) Snapshot() *config.Snapshot          { return m.snap }
