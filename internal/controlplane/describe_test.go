package controlplane

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/config"
)

// writeFiles writes each file (name → body) into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func loadSnapshot(t *testing.T, files map[string]string) *config.Snapshot {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	snap, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

const describePolicies = `
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  serviceAccount: web-sa
  command: x
  ports: [{name: http, number: 8080, protocol: HTTP}, {name: metrics, number: 9090, protocol: HTTP}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: db, namespace: shop, labels: {app: db}}
spec:
  serviceAccount: db-sa
  command: x
  ports: [{name: tcp, number: 5432, protocol: TCP}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web-root, namespace: istio-system}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls: {9090: {mode: PERMISSIVE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec:
  host: db.shop.svc.cluster.local
  trafficPolicy: {tls: {mode: DISABLE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{to: [{operation: {methods: [GET]}}]}, {}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all-db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-audit, namespace: istio-system}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules: [{issuer: https://issuer.example, jwksUri: https://issuer.example/keys}]
`

// palisade describe workload, like istioctl x describe pod: each port's
// effective mode and what set it, the destination rules of its service,
// and the policies that apply.
func TestDescribe(t *testing.T) {
	snap := loadSnapshot(t, map[string]string{"all.yaml": describePolicies})
	ws := ConfigRegistry{}.Workloads(snap)
	d, err := Describe(snap, ws, WorkloadKey{"shop", "web"})
	if err != nil {
		t.Fatal(err)
	}
	if d.SpiffeID != "spiffe://cluster.local/ns/shop/sa/web-sa" || d.Service != "web.shop.svc.cluster.local" {
		t.Errorf("identity %q service %q", d.SpiffeID, d.Service)
	}
	ports := map[uint32]string{}
	for _, p := range d.Ports {
		ports[p.Port] = fmt.Sprintf("%s by %s portLevel=%v", p.Mode, p.SetBy, p.PortLevel)
	}
	want := map[uint32]string{
		// The root-namespace DISABLE with a selector is ignored, as Istio
		// ignores it; the workload policy leaves its mode UNSET.
		8080: "STRICT by istio-system/default portLevel=false",
		9090: "PERMISSIVE by shop/web portLevel=true",
	}
	if !reflect.DeepEqual(ports, want) {
		t.Errorf("ports %v, want %v", ports, want)
	}
	if got := strings.Join(d.DestinationRules, "; "); got != "shop/web (host web, tls ISTIO_MUTUAL)" {
		t.Errorf("destination rules %q", got)
	}
	names := func(ps []PolicySummary) string {
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s %s %s rules=%d", p.Name, p.Action, p.Scope, p.Rules))
		}
		sort.Strings(out)
		return strings.Join(out, "; ")
	}
	if got, want := names(d.Authorization), "istio-system/mesh-audit AUDIT mesh rules=1; shop/allow-web ALLOW workload rules=2"; got != want {
		t.Errorf("authorization %q, want %q", got, want)
	}
	if got, want := names(d.RequestAuthn), "shop/jwt  namespace rules=1"; got != want {
		t.Errorf("request authentication %q, want %q", got, want)
	}
	if got, want := names(d.PeerAuthn), "istio-system/default STRICT mesh rules=0; shop/web UNSET workload rules=0"; got != want {
		t.Errorf("peer authentication %q, want %q", got, want)
	}
	db, err := Describe(snap, ws, WorkloadKey{"shop", "db"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(db.DestinationRules, "; "); got != "shop/db (host db.shop.svc.cluster.local, tls DISABLE)" {
		t.Errorf("db destination rules %q", got)
	}
	if _, err := Describe(snap, ws, WorkloadKey{"shop", "ghost"}); err == nil {
		t.Error("describe of a workload not in the config succeeded")
	}
}

// palisade status -o json: the field names scripts rely on.
func TestStatusJSON(t *testing.T) {
	srv := NewServer(discardLog(), ConfigRegistry{}, nil)
	if err := srv.SetSnapshot(loadSnapshot(t, map[string]string{"all.yaml": describePolicies})); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(srv.Status())
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("status rows %s", b)
	}
	for _, r := range rows {
		for _, k := range []string{"name", "namespace", "inboundAddress", "appAddress", "spiffeId", "mtlsMode"} {
			if _, ok := r[k]; !ok {
				t.Errorf("status row lacks %q: %v", k, r)
			}
		}
	}
	if rows[0]["name"] != "db" || rows[0]["mtlsMode"] != "STRICT" || rows[1]["spiffeId"] != "spiffe://cluster.local/ns/shop/sa/web-sa" {
		t.Errorf("status %s", b)
	}
}

// ServiceEntry with a workloadSelector takes the WorkloadEntries of its
// namespace whose labels match; the workloads' own services get one
// endpoint per port, marked for auto mTLS unless the port is DISABLE.
func TestBuildServices(t *testing.T) {
	snap := loadSnapshot(t, map[string]string{"all.yaml": describePolicies + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy-vms, namespace: shop}
spec:
  hosts: [vms.shop.internal]
  location: MESH_INTERNAL
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: legacy}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: legacy}, serviceAccount: legacy-sa}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-2, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: other}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-3, namespace: books}
spec: {address: 10.0.0.3, labels: {app: legacy}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  mtls: {mode: DISABLE}
`})
	ws := ConfigRegistry{}.Workloads(snap)
	for _, w := range ws {
		switch w.Key.Name {
		case "web":
			w.Inbound = map[uint32]string{8080: "127.0.0.1:15001", 9090: "127.0.0.1:15002"}
		case "db":
			w.Inbound = map[uint32]string{5432: "127.0.0.1:15003"}
		}
	}
	byName := map[string]*networkingv1alpha3.ServiceEntry{}
	for _, s := range BuildServices(snap, ws) {
		byName[s.Namespace+"/"+s.Name] = s.Spec
	}
	endpoints := func(name string) string {
		var out []string
		for _, e := range byName[name].GetEndpoints() {
			out = append(out, fmt.Sprintf("%s %v sa=%s mtls=%s", e.GetAddress(), e.GetPorts(), e.GetServiceAccount(), e.GetLabels()[TLSModeLabel]))
		}
		return strings.Join(out, "; ")
	}
	for name, want := range map[string]string{
		"shop/legacy-vms": "10.0.0.1 map[] sa=legacy-sa mtls=",
		"shop/web":        "127.0.0.1 map[http:15001] sa=web-sa mtls=istio; 127.0.0.1 map[metrics:15002] sa=web-sa mtls=istio",
		"shop/db":         "127.0.0.1 map[tcp:15003] sa=db-sa mtls=",
	} {
		if got := endpoints(name); got != want {
			t.Errorf("%s endpoints %q, want %q", name, got, want)
		}
	}
	if hosts := byName["shop/web"].GetHosts(); !reflect.DeepEqual(hosts, []string{"web.shop.svc.cluster.local", "web.shop.svc", "web.shop", "web"}) {
		t.Errorf("web hosts %v", hosts)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A VirtualService is listed for the workloads its routes send traffic to
// (as istioctl x describe pod lists them), whatever hosts it answers for.
func TestDescribeVirtualServices(t *testing.T) {
	snap := loadSnapshot(t, map[string]string{"p.yaml": describePolicies + `
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [shop-gateway]
  http:
  - route:
    - destination: {host: web, port: {number: 8080}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db-split, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  tcp:
  - route:
    - destination: {host: db.shop.svc.cluster.local}
`})
	ws := ConfigRegistry{}.Workloads(snap)
	web, err := Describe(snap, ws, WorkloadKey{"shop", "web"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shop/edge (hosts *; gateways shop-gateway)"}; !reflect.DeepEqual(web.VirtualServices, want) {
		t.Errorf("web's virtual services = %q, want %q", web.VirtualServices, want)
	}
	db, err := Describe(snap, ws, WorkloadKey{"shop", "db"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shop/db-split (hosts db.shop.svc.cluster.local)"}; !reflect.DeepEqual(db.VirtualServices, want) {
		t.Errorf("db's virtual services = %q, want %q", db.VirtualServices, want)
	}
}
