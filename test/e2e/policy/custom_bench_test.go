package policy_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// BenchmarkCustomOPA measures what a CUSTOM policy adds to a request: the
// same request through the mesh to two identical workloads, one guarded
// by CUSTOM with the real OPA Envoy plugin (allowing everything, so only
// the check costs), in one run. It reports p50 and p99 of each and the
// added latency.
func BenchmarkCustomOPA(b *testing.B) {
	bins := meshtest.Build(b)
	bins.BuildMain(b, "./test/e2e/policy/echoapp")
	opaAddr := freeAddr(b)
	root := bins.Root
	startOPA(b, bins, filepath.Join(root, "test", "e2e", "policy", "testdata", "allow.rego"), opaAddr)
	dir := b.TempDir()
	writeFile(b, dir, "mesh.yaml", fmt.Sprintf(`trustDomain: cluster.local
rootNamespace: istio-system
extensionProviders:
- name: opa
  envoyExtAuthzGrpc:
    service: opa.local
    port: %s
`, portOf(b, opaAddr)))
	writeFile(b, dir, "resources.yaml", fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: opa, namespace: istio-system}
spec:
  hosts: [opa.local]
  endpoints: [{address: 127.0.0.1}]
  ports: [{name: grpc, number: %s, protocol: GRPC}]
  resolution: DNS
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: guarded, namespace: apps}
spec:
  selector: {matchLabels: {app: guarded}}
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: ["*"]}}]}]
---
`, portOf(b, opaAddr))+
		echoWorkload("apps", "plain", "plain-sa", 8080, map[string]string{"app": "plain"})+
		echoWorkload("apps", "guarded", "guarded-sa", 8080, map[string]string{"app": "guarded"}))
	writeFile(b, dir, "user-client.yaml", userClientYAML)
	m := meshtest.Up(b, bins, dir)
	c := m.Client("clients", "user")
	get := func(u string) time.Duration {
		start := time.Now()
		resp, err := c.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s", u, resp.Status)
		}
		return time.Since(start)
	}
	for _, u := range []string{"http://plain.apps:8080/", "http://guarded.apps:8080/"} {
		for range 50 { // warm connections and caches
			get(u)
		}
	}
	plain := make([]time.Duration, 0, b.N)
	guarded := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plain = append(plain, get("http://plain.apps:8080/"))
		guarded = append(guarded, get("http://guarded.apps:8080/"))
	}
	b.StopTimer()
	p := func(ds []time.Duration, q float64) float64 {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return float64(ds[int(q*float64(len(ds)-1))]) / 1e6
	}
	b.ReportMetric(p(plain, 0.5), "plain-p50-ms")
	b.ReportMetric(p(plain, 0.99), "plain-p99-ms")
	b.ReportMetric(p(guarded, 0.5), "custom-p50-ms")
	b.ReportMetric(p(guarded, 0.99), "custom-p99-ms")
	b.ReportMetric(p(guarded, 0.5)-p(plain, 0.5), "added-p50-ms")
	b.ReportMetric(p(guarded, 0.99)-p(plain, 0.99), "added-p99-ms")
}
