package authz

import (
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want string
	}{
		{"conditions: experimental.envoy.filters is unsupported", `{rules: [{when: [{key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}]}]}`, "not supported"},
		{"conditions: unknown key", `{rules: [{when: [{key: source.user, values: [x]}]}]}`, "unknown attribute"},
		{"conditions: values or notValues required", `{rules: [{when: [{key: source.ip}]}]}`, "at least one of values"},
		{"conditions: malformed header key", `{rules: [{when: [{key: "request.headers[]", values: [x]}]}]}`, "request.headers[<name>]"},
		{"conditions: malformed claim key", `{rules: [{when: [{key: "request.auth.claims[a", values: [x]}]}]}`, "unclosed"},
		{"reference: bad CIDR", `{rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}]}]}`, "ipBlocks"},
		{"reference: bad port", `{rules: [{to: [{operation: {ports: ["70000"]}}]}]}`, "not a port"},
		{"reference: bad port word", `{rules: [{to: [{operation: {ports: [http]}}]}]}`, "not a port"},
		{"reference: serviceAccounts with principals", `{rules: [{from: [{source: {serviceAccounts: [a], principals: [b]}}]}]}`, "cannot be set with"},
		{"reference: serviceAccounts wildcard", `{rules: [{from: [{source: {serviceAccounts: ["foo/*"]}}]}]}`, "no wildcards"},
		{"reference: path template {**} not last", `{rules: [{to: [{operation: {paths: ["/{**}/foo/{*}"]}}]}]}`, "last operator"},
		{"reference: path template partial segment", `{rules: [{to: [{operation: {paths: ["/foo/{*}.txt"]}}]}]}`, "whole-segment"},
		{"reference: path template with *", `{rules: [{to: [{operation: {paths: ["/*/baz/{*}"]}}]}]}`, "whole-segment"},
		{"reference: stray brace", `{rules: [{to: [{operation: {paths: ["/foo/{x}"]}}]}]}`, "only allowed"},
		{"reference: CUSTOM without provider", `{action: CUSTOM, rules: [{}]}`, "provider.name"},
		{"reference: provider with ALLOW", `{action: ALLOW, provider: {name: x}, rules: [{}]}`, "only allowed with action CUSTOM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := toPolicies(t, []pol{P(tc.spec)})
			_, err := Compile(ps, httpbin, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile error = %v, want it to mention %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "authz: compile foo/p0: ") {
				t.Fatalf("error %q lacks the authz: compile <policy> prefix", err)
			}
			if err := Validate(ps, Options{}); err == nil {
				t.Fatal("Validate accepted what Compile rejects")
			}
		})
	}
}

func TestCompileScopeAndErrors(t *testing.T) {
	bad := `{rules: [{when: [{key: nope, values: [x]}]}]}`
	t.Run("an invalid policy that does not apply does not break the workload", func(t *testing.T) {
		if _, err := Compile(toPolicies(t, []pol{PN("bar", bad)}), httpbin, Options{}); err != nil {
			t.Fatal(err)
		}
		if err := Validate(toPolicies(t, []pol{PN("bar", bad)}), Options{}); err == nil {
			t.Fatal("Validate must still report it")
		}
	})
	t.Run("every problem is reported", func(t *testing.T) {
		_, err := Compile(toPolicies(t, []pol{P(bad), P(`{rules: [{to: [{operation: {ports: [x]}}]}]}`)}), httpbin, Options{})
		if err == nil || !strings.Contains(err.Error(), "foo/p0") || !strings.Contains(err.Error(), "foo/p1") {
			t.Fatalf("want both policies in %v", err)
		}
	})
	t.Run("reference: at most one CUSTOM provider per workload", func(t *testing.T) {
		_, err := Compile(toPolicies(t, []pol{
			P(`{action: CUSTOM, provider: {name: a}, rules: [{}]}`),
			P(`{action: CUSTOM, provider: {name: b}, rules: [{}]}`),
		}), httpbin, Options{})
		if err == nil || !strings.Contains(err.Error(), "one provider per workload") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("root namespace option", func(t *testing.T) {
		e := compileT(t, []pol{PN("mesh-root", denyAll)}, httpbin, Options{RootNamespace: "mesh-root"})
		r := H("GET", "/")
		if e.Evaluate(&r).Allowed {
			t.Fatal("policy in the configured root namespace did not apply")
		}
		e = compileT(t, []pol{PN("mesh-root", denyAll)}, httpbin, Options{})
		if !e.Evaluate(&r).Allowed {
			t.Fatal("policy in a non-root namespace applied")
		}
	})
	t.Run("root namespace DENY is reported before a namespace DENY", func(t *testing.T) {
		e := compileT(t, []pol{P(denyAll), PN("istio-system", denyAll)}, httpbin, Options{})
		r := H("GET", "/")
		if d := e.Evaluate(&r); d.Policy.Namespace != "istio-system" {
			t.Fatalf("decided by %+v", d.Policy)
		}
	})
}

func TestAuditMarks(t *testing.T) {
	e := compileT(t, []pol{
		P(`{action: AUDIT, rules: [{to: [{operation: {paths: ["/secret*"]}}]}]}`),
		P(`{action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}`),
	}, httpbin, Options{})
	tests := []struct {
		name           string
		req            Request
		allow, audited bool
	}{
		{"reference: AUDIT marks an allowed request", H("GET", "/secret/x"), true, true},
		{"reference: AUDIT marks a denied request", H("DELETE", "/secret/x"), false, true},
		{"reference: AUDIT not matched", H("GET", "/public"), true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req
			d := e.Evaluate(&r)
			if d.Allowed != tc.allow || d.Audited != tc.audited {
				t.Fatalf("decision %+v", d)
			}
			if tc.audited && (d.Audit.Name != "p0" || d.Audit.Action != ActionAudit) {
				t.Fatalf("audit ref %+v", d.Audit)
			}
		})
	}
}
