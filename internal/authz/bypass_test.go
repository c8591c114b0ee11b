package authz

import (
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

var allModes = []NormalizationMode{
	meshv1alpha1.MeshConfig_ProxyPathNormalization_DEFAULT,
	meshv1alpha1.MeshConfig_ProxyPathNormalization_BASE,
	meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES,
	meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES,
	meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE,
}

// TestPathBypassRefused sends spellings of /admin that a backend may read
// as /admin, through the mesh's normalization and then a DENY on /admin,
// under every normalization mode: each must be rejected by NormalizePath
// or denied by the engine.
func TestPathBypassRefused(t *testing.T) {
	denies := map[string]string{
		"prefix /admin*":            `{action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`,
		"exact /admin and /admin/*": `{action: DENY, rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]}`,
		"template /admin/{**}":      `{action: DENY, rules: [{to: [{operation: {paths: ["/admin", "/admin/{**}"]}}]}]}`,
	}
	tests := []struct {
		name string
		raw  string
		// noneOnly marks spellings that only NONE forwards as sent; the
		// other modes forward the resolved path (here "/public/admin").
		noneOnly bool
	}{
		{name: "baseline", raw: "/admin"},
		{name: "baseline sub-path", raw: "/admin/users"},
		{name: "normalization: %61 unreserved escape", raw: "/%61dmin"},
		{name: "normalization: %41 upper-case escape in a sub-path", raw: "/admin/%41"},
		{name: "CVE-2019-9901: dot-dot segment", raw: "/public/../admin"},
		{name: "CVE-2019-9901: dot segment", raw: "/./admin"},
		{name: "CVE-2019-9901: dot-dot above root", raw: "/../admin"},
		{name: "CVE-2019-9901: encoded dot-dot %2e%2e", raw: "/public/%2e%2e/admin"},
		{name: "CVE-2019-9901: encoded dot-dot %2E%2E", raw: "/public/%2E%2E/admin"},
		{name: "CVE-2019-9901: mixed dot segments", raw: "/public/./../admin"},
		{name: "CVE-2019-9900: NUL byte %00 in path", raw: "/adm%00in"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): %2F", raw: "/public/..%2Fadmin"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): %2f", raw: "/public/..%2fadmin"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): leading %2F", raw: "/%2Fadmin"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): %5C", raw: "/public/..%5Cadmin"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): %5c", raw: "/public/..%5cadmin"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): //", raw: "//admin"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): ///", raw: "///admin/x"},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): // then ..", raw: "/public//../admin", noneOnly: true},
		{name: "CVE-2021-31920 (ISTIO-SECURITY-2021-005): encoded dots and slashes", raw: "/public/%2e%2e%2fadmin"},
		{name: "normalization: backslash", raw: "/public\\..\\admin"},
		{name: "normalization: backslash root", raw: "\\admin"},
		{name: "CVE-2020-8595 (ISTIO-SECURITY-2020-001): ?query on exact path", raw: "/admin?x=1"},
		{name: "CVE-2020-8595 (ISTIO-SECURITY-2020-001): ?query with slash", raw: "/admin?/public"},
		{name: "CVE-2021-39156 (ISTIO-SECURITY-2021-008): #fragment", raw: "/admin#public"},
		{name: "CVE-2021-39156 (ISTIO-SECURITY-2021-008): #fragment with query", raw: "/admin#x?y"},
		{name: "CVE-2021-32779: fragment after sub-path", raw: "/app1/../admin#foo"},
		{name: "path parameters: Tomcat ..;/", raw: "/public/..;/admin"},
		{name: "path parameters: ;jsessionid", raw: "/admin;jsessionid=1"},
		{name: "normalization: no leading slash", raw: "admin"},
		{name: "normalization: leading space", raw: " /admin"},
		{name: "normalization: malformed escape", raw: "/admin%zz"},
		{name: "spec: upper case", raw: "/ADMIN"},
		{name: "spec: mixed case sub-path", raw: "/aDmIn/users"},
		{name: "spec: upper-case escapes decoded", raw: "/%41%44MIN"},
		{name: "spec: mixed case after dot-dot", raw: "/public/../Admin"},
		{name: "spec: mixed case with %2F", raw: "/public/..%2FADMIN"},
		{name: "spec: mixed case with ;params", raw: "/public/..;/Admin"},
		{name: "spec: mixed case with //", raw: "//Admin"},
	}
	for modeName, spec := range denies {
		for _, mode := range allModes {
			e := compileT(t, []pol{P(allowAll), P(spec)}, httpbin, Options{})
			for _, tc := range tests {
				t.Run(modeName+"/"+mode.String()+"/"+tc.name, func(t *testing.T) {
					if tc.noneOnly && mode != meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE {
						if p, _ := NormalizePath(mode, tc.raw); p != "/public/admin" {
							t.Fatalf("forwarded %q, want the resolved /public/admin", p)
						}
						return
					}
					p, reject := NormalizePath(mode, tc.raw)
					if reject {
						return // refused with 400 before authorization
					}
					r := H("GET", p)
					if d := e.Evaluate(&r); d.Allowed {
						t.Fatalf("raw %q normalized to %q was allowed (%+v)", tc.raw, p, d)
					}
				})
			}
		}
	}
}

// TestPathBypassAllowSide checks the same spellings cannot reach /admin
// through an ALLOW on /public/*: every spelling must pass an ALLOW.
func TestPathBypassAllowSide(t *testing.T) {
	e := compileT(t, []pol{P(`{rules: [{to: [{operation: {paths: ["/public/*"]}}]}]}`)}, httpbin, Options{})
	for _, raw := range []string{
		"/public/..%2Fadmin", "/public/..%5Cadmin", "/public/..;/admin", "/public/%2e%2e%2fadmin",
	} {
		for _, mode := range allModes {
			t.Run(mode.String()+"/"+raw, func(t *testing.T) {
				p, reject := NormalizePath(mode, raw)
				if reject {
					return
				}
				r := H("GET", p)
				if d := e.Evaluate(&r); d.Allowed {
					t.Fatalf("raw %q normalized to %q allowed by ALLOW /public/* (%+v)", raw, p, d)
				}
			})
		}
	}
	r := H("GET", "/public/index.html")
	if d := e.Evaluate(&r); !d.Allowed {
		t.Fatalf("plain /public/index.html denied: %+v", d)
	}
}

// TestPathCase documents the case rule for paths. Istio compares paths
// case-sensitively, but a case-insensitive backend reads /ADMIN as /admin,
// and Palisade's spec says no spelling, mixed case included, slips past a
// DENY on /admin*. So DENY-like paths fold case and their notPaths compare
// exactly (a variant of an excluded path is still denied); ALLOW paths
// stay exact, as in Istio, and ALLOW notPaths fold (a variant of an
// excluded path is not admitted). Every choice only denies more.
func TestPathCase(t *testing.T) {
	const (
		denyAdmin      = `{action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`
		denyTmpl       = `{action: DENY, rules: [{to: [{operation: {paths: ["/admin/{*}/keys"]}}]}]}`
		denyNotPublic  = `{action: DENY, rules: [{to: [{operation: {notPaths: ["/public*"]}}]}]}`
		allowPublic    = `{rules: [{to: [{operation: {paths: ["/public*"]}}]}]}`
		allowNotAdmin  = `{rules: [{to: [{operation: {notPaths: ["/admin*"]}}]}]}`
		allowApiNotPrv = `{rules: [{to: [{operation: {paths: ["/api/*"], notPaths: ["/api/private*"]}}]}]}`
	)
	tests := []struct {
		name  string
		pols  []string
		path  string
		allow bool
	}{
		{"spec: DENY /admin* refuses /ADMIN (case-insensitive backend)", []string{allowAll, denyAdmin}, "/ADMIN", false},
		{"spec: DENY /admin* refuses /Admin/x", []string{allowAll, denyAdmin}, "/Admin/x", false},
		{"spec: DENY /admin* refuses /aDmIn/x", []string{allowAll, denyAdmin}, "/aDmIn/x", false},
		{"spec: DENY /admin* refuses %41DMIN (decoded to /ADMIN)", []string{allowAll, denyAdmin}, "/%41DMIN", false},
		{"spec: DENY /admin* refuses /public/../ADMIN", []string{allowAll, denyAdmin}, "/public/../ADMIN", false},
		{"spec: DENY /admin* lets /public through", []string{allowAll, denyAdmin}, "/public", true},
		{"spec: DENY template folds its literals", []string{allowAll, denyTmpl}, "/ADMIN/x/KEYS", false},
		{"spec: DENY notPaths stay exact: /PUBLIC is not /public, so denied", []string{allowAll, denyNotPublic}, "/PUBLIC/x", false},
		{"spec: DENY notPaths: /public itself passes", []string{allowAll, denyNotPublic}, "/public/x", true},
		{"reference: ALLOW paths stay case-sensitive as in Istio (/PUBLIC not admitted)", []string{allowPublic}, "/PUBLIC", false},
		{"reference: ALLOW paths admit the exact case", []string{allowPublic}, "/public/x", true},
		{"ISTIO-SECURITY-2021-005: ALLOW notPaths fold: /ADMIN is not admitted", []string{allowNotAdmin}, "/ADMIN", false},
		{"ISTIO-SECURITY-2021-005: ALLOW notPaths fold: /Admin/x is not admitted", []string{allowNotAdmin}, "/Admin/x", false},
		{"ISTIO-SECURITY-2021-005: ALLOW notPaths: other paths admitted", []string{allowNotAdmin}, "/public", true},
		{"ISTIO-SECURITY-2021-005: ALLOW paths exact, notPaths fold, in one field", []string{allowApiNotPrv}, "/api/PRIVATE/x", false},
		{"ISTIO-SECURITY-2021-005: ALLOW paths exact, notPaths fold, admitted", []string{allowApiNotPrv}, "/api/public", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pols []pol
			for _, s := range tc.pols {
				pols = append(pols, P(s))
			}
			e := compileT(t, pols, httpbin, Options{})
			p, reject := NormalizePath(meshv1alpha1.MeshConfig_ProxyPathNormalization_BASE, tc.path)
			if reject {
				t.Fatalf("rejected %q", tc.path)
			}
			r := H("GET", p)
			if d := e.Evaluate(&r); d.Allowed != tc.allow {
				t.Fatalf("%q: Allowed = %v, want %v (%+v)", p, d.Allowed, tc.allow, d)
			}
		})
	}
	t.Run("spec: CUSTOM on /admin* sends /ADMIN to the provider", func(t *testing.T) {
		e := compileT(t, []pol{P(`{action: CUSTOM, provider: {name: ext}, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`)}, httpbin, Options{})
		r := H("GET", "/ADMIN/x")
		if _, _, ok := e.Custom(&r); !ok {
			t.Fatal("CUSTOM did not select /ADMIN/x")
		}
	})
	t.Run("spec: AUDIT on /admin* marks /ADMIN", func(t *testing.T) {
		e := compileT(t, []pol{P(`{action: AUDIT, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`)}, httpbin, Options{})
		r := H("GET", "/ADMIN/x")
		if d := e.Evaluate(&r); !d.Audited {
			t.Fatalf("not audited: %+v", d)
		}
	})
}

// TestHostMethodHeaderBypassRefused covers the other attacker-shaped
// attributes against DENY policies.
func TestHostMethodHeaderBypassRefused(t *testing.T) {
	tests := []struct {
		name string
		deny string
		req  Request
	}{
		{"CVE-2021-39155 (ISTIO-SECURITY-2021-008): host upper case", `{hosts: [admin.example.com]}`, H("GET", "/", host("ADMIN.example.com"))},
		{"CVE-2021-39155 (ISTIO-SECURITY-2021-008): host mixed case", `{hosts: [admin.example.com]}`, H("GET", "/", host("Admin.Example.Com"))},
		{"best-practices: host with trailing dot", `{hosts: [admin.example.com]}`, H("GET", "/", host("admin.example.com."))},
		{"best-practices: host with port", `{hosts: [admin.example.com]}`, H("GET", "/", host("admin.example.com:443"))},
		{"best-practices: host with trailing dot and port", `{hosts: [admin.example.com]}`, H("GET", "/", host("Admin.Example.com.:8080"))},
		{"best-practices: *. host with trailing dot", `{hosts: ["*.internal.example.com"]}`, H("GET", "/", host("db.internal.example.com."))},
		{"best-practices: *. host with port", `{hosts: ["*.internal.example.com"]}`, H("GET", "/", host("db.INTERNAL.example.com:80"))},
		{"best-practices: prefix host with port", `{hosts: ["admin.*"]}`, H("GET", "/", host("ADMIN.example.com:80"))},
		{"best-practices: notHosts with port", `{notHosts: [www.example.com]}`, H("GET", "/", host("www.example.com:80"))},
		{"best-practices: IPv6 host with port", `{hosts: ["[::1]"]}`, H("GET", "/", host("[::1]:8080"))},
		{"normalization: lower-case method", `{methods: [DELETE]}`, H("delete", "/")},
		{"normalization: mixed-case method", `{methods: [DELETE]}`, H("DeLeTe", "/")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := compileT(t, []pol{P(allowAll), P(`{action: DENY, rules: [{to: [{operation: ` + tc.deny + `}]}]}`)}, httpbin, Options{})
			r := tc.req
			if d := e.Evaluate(&r); d.Allowed {
				t.Fatalf("allowed: %+v", d)
			}
		})
	}
	headerTests := []struct {
		name string
		req  Request
	}{
		{"normalization: header name case", H("GET", "/", func(r *Request) { r.Headers["X-USER"] = []string{"mallory"} })},
		{"normalization: repeated header, bad value second", H("GET", "/", hdr("X-User", "alice", "mallory"))},
		{"normalization: repeated header, bad value first", H("GET", "/", hdr("X-User", "mallory", "alice"))},
	}
	e := compileT(t, []pol{P(allowAll), P(`{action: DENY, rules: [{when: [{key: "request.headers[x-user]", values: [mallory]}]}]}`)}, httpbin, Options{})
	for _, tc := range headerTests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req
			if d := e.Evaluate(&r); d.Allowed {
				t.Fatalf("allowed: %+v", d)
			}
		})
	}
}
