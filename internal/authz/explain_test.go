package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

func loadTestdata(t *testing.T, name string) Policy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return loadPolicyDoc(t, b)
}

func TestExplain(t *testing.T) {
	deny := loadTestdata(t, "deny-admin-tcp-http.yaml")
	allow := Policy{Namespace: "foo", Name: "allow-get", Spec: mustSpec(t, `{rules: [{to: [{operation: {methods: [GET], paths: ["/api/*"]}}]}, {when: [{key: "request.headers[authorization]", values: ["Bearer *"]}]}]}`)}
	nothing := Policy{Namespace: "foo", Name: "allow-nothing", Spec: mustSpec(t, `{}`)}
	e, err := Compile([]Policy{deny, allow, nothing}, httpbin, Options{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("denied by the first rule, with the peer's namespace", func(t *testing.T) {
		r := H("GET", "/api/x", peer("cluster.local/ns/bar/sa/x"))
		x := e.Explain(&r)
		if x.Decision.Allowed || x.Decision.Policy.Name != "deny-admin" || x.Decision.Policy.Rule != 0 {
			t.Fatalf("decision %+v", x.Decision)
		}
		pe := findPolicy(t, x, "deny-admin")
		if !pe.Matched || pe.Policy.Rule != 0 || !pe.Rules[0].Matched || pe.Rules[1].Matched {
			t.Fatalf("deny-admin explanation %+v", pe)
		}
		if got := strings.Join(pe.Rules[1].Failed, "; "); !strings.Contains(got, "to[0].operation.methods") || !strings.Contains(got, `"GET"`) {
			t.Fatalf("rule 1 failures %q", got)
		}
	})

	t.Run("allowed by the second ALLOW rule; every policy listed", func(t *testing.T) {
		r := H("POST", "/x", hdr("Authorization", "Bearer s3cr3t-token"))
		x := e.Explain(&r)
		if !x.Decision.Allowed || x.Decision.Policy.Name != "allow-get" || x.Decision.Policy.Rule != 1 {
			t.Fatalf("decision %+v", x.Decision)
		}
		if len(x.Policies) != 3 {
			t.Fatalf("want 3 policies explained, got %d", len(x.Policies))
		}
		pe := findPolicy(t, x, "allow-get")
		if pe.Rules[0].Matched || len(pe.Rules[0].Failed) != 2 {
			t.Fatalf("rule 0 should fail on methods and paths: %+v", pe.Rules[0])
		}
		if pn := findPolicy(t, x, "allow-nothing"); pn.Matched || pn.Note != "no rules: allows nothing" {
			t.Fatalf("allow-nothing %+v", pn)
		}
	})

	t.Run("credential header values never appear", func(t *testing.T) {
		r := H("POST", "/x", hdr("Authorization", "Basic s3cr3t-token"))
		x := e.Explain(&r)
		if x.Decision.Allowed {
			t.Fatalf("decision %+v", x.Decision)
		}
		for _, pe := range x.Policies {
			for _, re := range pe.Rules {
				for _, f := range re.Failed {
					if strings.Contains(f, "s3cr3t") {
						t.Fatalf("secret leaked in %q", f)
					}
				}
			}
		}
		pe := findPolicy(t, x, "allow-get")
		if len(pe.Rules[1].Failed) != 1 || !strings.Contains(pe.Rules[1].Failed[0], "not shown") {
			t.Fatalf("rule 1 %+v", pe.Rules[1])
		}
	})

	t.Run("TCP: ALLOW rules with HTTP fields noted, DENY HTTP fields ignored", func(t *testing.T) {
		r := T()
		x := e.Explain(&r)
		if x.Decision.Allowed || x.Decision.Policy.Name != "deny-admin" || x.Decision.Policy.Rule != 1 {
			t.Fatalf("decision %+v", x.Decision)
		}
		pe := findPolicy(t, x, "deny-admin")
		if got := pe.Rules[1].Ignored; len(got) != 1 || got[0] != "to[0].operation.methods" {
			t.Fatalf("ignored %q", got)
		}
		ae := findPolicy(t, x, "allow-get")
		if !strings.Contains(ae.Rules[0].Note, "TCP") {
			t.Fatalf("allow note %+v", ae.Rules[0])
		}
	})
}

func TestExplainCustom(t *testing.T) {
	e, err := Compile([]Policy{loadTestdata(t, "ext-authz-custom.yaml")}, ingress, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Provider() != "my-custom-authz" {
		t.Fatalf("provider %q", e.Provider())
	}
	tests := []struct {
		name    string
		path    string
		matched bool
	}{
		{"reference: CUSTOM matches /admin/*", "/admin/users", true},
		{"reference: CUSTOM does not match other paths", "/public", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := H("GET", tc.path)
			prov, ref, ok := e.Custom(&r)
			if ok != tc.matched {
				t.Fatalf("Custom matched = %v", ok)
			}
			x := e.Explain(&r)
			if x.CustomMatched != ok || x.CustomProvider != prov || x.CustomPolicy != ref {
				t.Fatalf("Explain custom %+v vs %v %v %v", x, prov, ref, ok)
			}
			if ok && (prov != "my-custom-authz" || ref.Name != "ext-authz" || ref.Action != ActionCustom) {
				t.Fatalf("got %q %+v", prov, ref)
			}
			if d := e.Evaluate(&r); !d.Allowed {
				t.Fatalf("CUSTOM alone must leave Evaluate allowing: %+v", d)
			}
		})
	}
	// A sidecar is not selected by the gateway's policy.
	e2, err := Compile([]Policy{loadTestdata(t, "ext-authz-custom.yaml")}, httpbin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := H("GET", "/admin/x")
	if _, _, ok := e2.Custom(&r); ok {
		t.Fatal("gateway CUSTOM policy applied to a sidecar")
	}
}

func findPolicy(t *testing.T, x Explanation, name string) PolicyExplanation {
	t.Helper()
	for _, pe := range x.Policies {
		if pe.Policy.Name == name {
			return pe
		}
	}
	t.Fatalf("policy %q not explained", name)
	return PolicyExplanation{}
}

func mustSpec(t testing.TB, s string) *securityv1beta1.AuthorizationPolicy {
	t.Helper()
	spec, err := parseSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}
