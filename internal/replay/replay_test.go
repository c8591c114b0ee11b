package replay

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/analyze"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/telemetry"
)

const mesh = `apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: cart, namespace: shop, labels: {app: cart}}
spec:
  serviceAccount: cart
  command: ./cart
  ports: [{number: 8080, name: http, protocol: HTTP}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  serviceAccount: web
  command: ./web
  ports: [{number: 9000, name: http, protocol: HTTP}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: db, namespace: shop, labels: {app: db}}
spec:
  serviceAccount: db
  command: ./db
  ports: [{number: 5432, name: tcp, protocol: TCP}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: PERMISSIVE}}
`

const noDelete = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {methods: ["DELETE"]}}]}]`

func snapshotOf(t *testing.T, docs ...string) *config.Snapshot {
	t.Helper()
	rs, err := config.Decode("in.yaml", []byte(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	config.SortResources(rs)
	return &config.Snapshot{Version: 1, Mesh: config.DefaultMesh(), Resources: rs}
}

func proposal(t *testing.T, doc string) []*config.Resource {
	t.Helper()
	rs, err := config.Decode("proposal.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// window is a recorded window: web and a plaintext client call cart,
// cart calls db over TCP.
func window() []telemetry.Entry {
	var out []telemetry.Entry
	at := time.Unix(1000, 0)
	add := func(dst string, port uint32, src string, proto, method, path, decision string) {
		at = at.Add(time.Second)
		e := telemetry.Entry{Start: at, Direction: telemetry.Inbound, Protocol: proto, DestinationNamespace: "shop", DestinationWorkload: dst,
			DestinationPort: port, Method: method, Path: path, Decision: decision, DownstreamRemote: "10.1.0.7:40000", RequestID: fmt.Sprint(at.Unix())}
		if src != "" {
			e.MTLS, e.SourcePrincipal = true, "spiffe://cluster.local/ns/shop/sa/"+src
		}
		out = append(out, e)
	}
	add("cart", 8080, "web", "http", "GET", "/items/1", "")
	add("cart", 8080, "web", "http", "GET", "/items/2", "")
	add("cart", 8080, "web", "http", "POST", "/orders", "")
	add("cart", 8080, "", "http", "GET", "/healthz", "")
	add("db", 5432, "cart", "tcp", "", "", "")
	add("cart", 8080, "web", "http", "DELETE", "/items/1", "DENY") // refused when recorded
	// Outbound and gateway records are not replayed.
	out = append(out, telemetry.Entry{Start: at, Direction: telemetry.Outbound, DestinationNamespace: "shop", DestinationWorkload: "cart"})
	out = append(out, telemetry.Entry{Start: at, Direction: telemetry.Inbound, DestinationNamespace: "istio-system", DestinationWorkload: "istio-ingressgateway"})
	return out
}

func TestRun(t *testing.T) {
	cur := snapshotOf(t, mesh, noDelete)
	workloads := controlplane.ConfigRegistry{}.Workloads(cur)
	tests := []struct {
		name     string
		proposal string
		want     []string // kind path-or-port, in recorded order
	}{
		{name: "a DENY lists exactly the requests it matches", proposal: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-items, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/items/*"], methods: ["GET"]}}]}]`,
			want: []string{AllowedToDenied + " /items/1", AllowedToDenied + " /items/2"}},
		{name: "STRICT resets the plaintext client only", proposal: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}`,
			want: []string{StrictReset + " /healthz"}},
		{name: "replacing the DENY by one that matches nothing", proposal: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {methods: ["PURGE"]}}]}]`,
			want: []string{DeniedToAllowed + " /items/1"}},
		{name: "a TCP ALLOW for another principal denies the connection", proposal: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-only-web, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/web"]}}]}]`,
			want: []string{AllowedToDenied + " 5432"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(cur, Overlay(cur, proposal(t, tc.proposal)), workloads, window())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range res.Changes {
				what := c.Entry.Path
				if what == "" {
					what = fmt.Sprint(c.Entry.DestinationPort)
				}
				got = append(got, c.Kind+" "+what)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if res.Replayed != 6 || res.Skipped != 1 {
				t.Errorf("replayed %d, skipped %d; want 6 and 1", res.Replayed, res.Skipped)
			}
		})
	}
}

// The suggested policies are accepted by analyze, allow every recorded
// request that was allowed, and deny a source never seen.
func TestSuggest(t *testing.T) {
	cur := snapshotOf(t, mesh, noDelete)
	workloads := controlplane.ConfigRegistry{}.Workloads(cur)
	y, err := Suggest(workloads, window())
	if err != nil {
		t.Fatal(err)
	}
	suggested := proposal(t, string(y))
	if len(suggested) != 2 {
		t.Fatalf("%d policies suggested, want 2 (cart, db):\n%s", len(suggested), y)
	}
	applied := Overlay(cur, suggested)
	for _, f := range analyze.Run(applied) {
		if f.Level == analyze.Error {
			t.Errorf("analyze: %s", f)
		}
	}
	res, err := Run(cur, applied, workloads, window())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Changes {
		t.Errorf("the suggestion changes %s %s %s %s", c.Kind, c.Entry.SourcePrincipal, c.Entry.Method, c.Entry.Path)
	}
	never := []telemetry.Entry{
		{Direction: telemetry.Inbound, Protocol: "http", DestinationNamespace: "shop", DestinationWorkload: "cart", DestinationPort: 8080,
			MTLS: true, SourcePrincipal: "spiffe://cluster.local/ns/shop/sa/intruder", Method: "GET", Path: "/items/1", DownstreamRemote: "10.1.0.7:1"},
		{Direction: telemetry.Inbound, Protocol: "http", DestinationNamespace: "shop", DestinationWorkload: "cart", DestinationPort: 8080,
			MTLS: true, SourcePrincipal: "spiffe://cluster.local/ns/shop/sa/web", Method: "PUT", Path: "/items/1", DownstreamRemote: "10.1.0.7:1"},
		{Direction: telemetry.Inbound, Protocol: "http", DestinationNamespace: "shop", DestinationWorkload: "cart", DestinationPort: 8080,
			Method: "GET", Path: "/healthz", DownstreamRemote: "10.9.9.9:1"},
		{Direction: telemetry.Inbound, Protocol: "tcp", DestinationNamespace: "shop", DestinationWorkload: "db", DestinationPort: 5432,
			MTLS: true, SourcePrincipal: "spiffe://cluster.local/ns/shop/sa/web", DownstreamRemote: "10.1.0.7:1"},
	}
	res, err = Run(cur, applied, workloads, never)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != len(never) {
		t.Errorf("%d of %d never-seen requests denied by the suggestion:\n%s", len(res.Changes), len(never), y)
	}
	for _, c := range res.Changes {
		if c.Kind != AllowedToDenied {
			t.Errorf("%s %s: %s", c.Entry.SourcePrincipal, c.Entry.Path, c.Kind)
		}
	}
}

func TestPathPattern(t *testing.T) {
	for in, want := range map[string]string{"/": "/", "": "/", "/ping": "/ping", "/items/3": "/items/*", "/a/b/c?x=1": "/a/*", "/items/": "/items/*"} {
		if got := pathPattern(in); got != want {
			t.Errorf("pathPattern(%q) = %q, want %q", in, got, want)
		}
	}
}
