package authz

import (
	"fmt"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// meshPolicies builds n policies spread over namespaces; about four
// apply to httpbin (a root DENY, a namespace ALLOW, a selector ALLOW and
// an AUDIT), the rest select other workloads or live elsewhere.
func meshPolicies(b *testing.B, n int) []Policy {
	b.Helper()
	applying := toPolicies(b, []pol{
		PN("istio-system", `{action: DENY, rules: [{from: [{source: {notPrincipals: ["*"]}}], to: [{operation: {paths: ["/admin*"]}}]}]}`),
		P(`{rules: [{from: [{source: {namespaces: [bar]}}], to: [{operation: {methods: [POST], paths: ["/api/*"]}}]}]}`),
		P(`{selector: {matchLabels: {app: httpbin}}, rules: [{from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}], to: [{operation: {methods: [GET], paths: ["/api/{*}/items", "/headers"], hosts: ["httpbin.foo", "httpbin.foo:*"]}}], when: [{key: "request.headers[x-version]", values: ["v1", "v2"]}]}]}`),
		P(`{action: AUDIT, rules: [{to: [{operation: {paths: ["/secret*"]}}]}]}`),
	})
	out := applying
	for i := len(out); i < n; i++ {
		spec := &securityv1beta1.AuthorizationPolicy{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i)}},
			Rules: []*securityv1beta1.Rule{{
				From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Namespaces: []string{"foo"}}}},
				To:   []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Methods: []string{"GET"}}}},
			}},
		}
		ns := fmt.Sprintf("ns-%d", i%50)
		if i%3 == 0 {
			ns = "foo"
		}
		out = append(out, Policy{Namespace: ns, Name: fmt.Sprintf("p-%d", i), Spec: spec})
	}
	return out[:n]
}

func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		pols := meshPolicies(b, n)
		e, err := Compile(pols, httpbin, Options{})
		if err != nil {
			b.Fatal(err)
		}
		r := H("GET", "/api/v1/items", hdr("X-Version", "v2"))
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var d Decision
			for b.Loop() {
				d = e.Evaluate(&r)
			}
			if n > 2 && !d.Allowed {
				b.Fatalf("want allowed: %+v", d)
			}
		})
	}
}

func BenchmarkEvaluateTCP(b *testing.B) {
	e, err := Compile(meshPolicies(b, 100), httpbin, Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := T()
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Evaluate(&r)
	}
}

func BenchmarkCompile(b *testing.B) {
	pols := meshPolicies(b, 10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(pols, httpbin, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEvaluateDoesNotAllocate pins the hot path at zero allocations for
// ordinary HTTP and TCP requests.
func TestEvaluateDoesNotAllocate(t *testing.T) {
	pols := toPolicies(t, []pol{
		PN("istio-system", `{action: DENY, rules: [{from: [{source: {notPrincipals: ["*"]}}], to: [{operation: {paths: ["/admin*"]}}]}]}`),
		P(`{rules: [{from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}], to: [{operation: {methods: [GET], paths: ["/api/{*}/items"], hosts: ["httpbin.foo"]}}], when: [{key: "request.headers[x-version]", values: ["v1", "v2"]}, {key: "request.auth.claims[groups]", values: [g1]}]}]}`),
		P(`{action: DENY, rules: [{to: [{operation: {hosts: ["admin.foo"]}}]}]}`),
		P(`{action: DENY, rules: [{when: [{key: "request.headers[x-role]", values: [admin], notValues: [root]}]}]}`),
	})
	e, err := Compile(pols, httpbin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := []Request{
		H("GET", "/api/v1/items", hdr("X-Version", "v2"), jwt("iss", "sub", map[string]any{"groups": []any{"g0", "g1"}}), host("httpbin.foo:8000")),
		T(),
		// Repeated lines and comma-separated lists are matched without
		// building the joined string or the elements.
		H("GET", "/api/v1/items", hdr("X-Version", "v0, v2", "v1"), hdr("X-Role", "user, auditor", "viewer")),
	}
	for i := range reqs {
		if n := testing.AllocsPerRun(100, func() { _ = e.Evaluate(&reqs[i]) }); n != 0 {
			t.Errorf("request %d: %v allocations per Evaluate, want 0", i, n)
		}
	}
	if d := e.Evaluate(&reqs[0]); d.Reason != ReasonNoAllowMatch {
		t.Fatalf("host with port must not be allowed by an exact ALLOW host: %+v", d)
	}
}
