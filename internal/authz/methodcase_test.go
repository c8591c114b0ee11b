package authz

import (
	"fmt"
	"testing"
)

// TestMethodCase goes through methods and notMethods in every action
// against case variants of the method. HTTP/1 codecs reject a lower-case
// method, but HTTP/2 carries any token in :method, and Istio's rules were
// bypassed that way (ISTIO-SECURITY-2026-007, GHSA-w44g-8m76-8gc5). Envoy's
// header match on :method is exact. Palisade folds case on the side where
// a match narrows access and compares exactly on the other, so a variant
// never gets more than the method it spells:
//
//	ALLOW  methods exact (as Envoy)      notMethods fold (excludes "get" too)
//	DENY   methods fold (denies "get")   notMethods exact ("get" is not GET: denied)
//
// AUDIT and CUSTOM select requests like DENY.
func TestMethodCase(t *testing.T) {
	type want struct{ GET, get, Get, POST bool } // does the policy match?
	tests := []struct {
		action string
		field  string
		want   want
	}{
		{"ALLOW", "methods", want{GET: true}},
		{"ALLOW", "notMethods", want{POST: true}},
		{"DENY", "methods", want{GET: true, get: true, Get: true}},
		{"DENY", "notMethods", want{get: true, Get: true, POST: true}},
		{"AUDIT", "methods", want{GET: true, get: true, Get: true}},
		{"AUDIT", "notMethods", want{get: true, Get: true, POST: true}},
		{"CUSTOM", "methods", want{GET: true, get: true, Get: true}},
		{"CUSTOM", "notMethods", want{get: true, Get: true, POST: true}},
	}
	for _, tc := range tests {
		spec := fmt.Sprintf(`{action: %s, rules: [{to: [{operation: {%s: [GET]}}]}]}`, tc.action, tc.field)
		if tc.action == "CUSTOM" {
			spec = fmt.Sprintf(`{action: CUSTOM, provider: {name: ext}, rules: [{to: [{operation: {%s: [GET]}}]}]}`, tc.field)
		}
		e := compileT(t, []pol{P(spec)}, httpbin, Options{})
		for method, want := range map[string]bool{"GET": tc.want.GET, "get": tc.want.get, "Get": tc.want.Get, "POST": tc.want.POST} {
			t.Run(tc.action+" "+tc.field+" [GET]/"+method, func(t *testing.T) {
				r := H(method, "/")
				d := e.Evaluate(&r)
				var got bool
				switch tc.action {
				case "ALLOW":
					got = d.Allowed
				case "DENY":
					got = !d.Allowed
				case "AUDIT":
					got = d.Audited
				case "CUSTOM":
					_, _, got = e.Custom(&r)
				}
				if got != want {
					t.Fatalf("policy matched = %v, want %v (decision %+v)", got, want, d)
				}
			})
		}
	}
}
