package authz

import (
	"strings"
	"testing"
)

// TestHeaderListSpellings covers a header sent as a comma-separated list or
// as repeated lines. Envoy joined repeated lines with ',' and matched the
// joined string, so a DENY on "admin" missed "X-Role: user" plus
// "X-Role: admin" (CVE-2026-26308, GHSA-ghc4-35x6-crw5, fixed in Envoy by
// matching each line on its own). Envoy never splits one line, yet HTTP
// makes "user,admin" the same list as the two lines (RFC 9110 section
// 5.3), so Palisade's DENY also matches each element. ALLOW keeps Envoy's
// whole-line match for values and only ever narrows.
func TestHeaderListSpellings(t *testing.T) {
	const (
		denyAdmin    = `{action: DENY, rules: [{when: [{key: "request.headers[x-role]", values: [admin]}]}]}`
		denyNotAdmin = `{action: DENY, rules: [{when: [{key: "request.headers[x-role]", notValues: [admin]}]}]}`
		allowAdmin   = `{rules: [{when: [{key: "request.headers[x-role]", values: [admin]}]}]}`
		allowNotAdm  = `{rules: [{when: [{key: "request.headers[x-role]", notValues: [admin]}]}]}`
	)
	tests := []struct {
		name  string
		spec  string
		lines []string
		allow bool
	}{
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, two lines", denyAdmin, []string{"regular-user", "admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, one comma-joined line", denyAdmin, []string{"regular-user,admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, element with spaces", denyAdmin, []string{"regular-user , admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, element with a tab", denyAdmin, []string{"regular-user,\tadmin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, empty elements around", denyAdmin, []string{",admin,"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, element in a later line", denyAdmin, []string{"a", "b,admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, plain value", denyAdmin, []string{"admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, other values pass", denyAdmin, []string{"regular-user,auditor"}, true},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY exact, an element is whole", denyAdmin, []string{"administrator,x"}, true},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY on the joined form still matches two lines", `{action: DENY, rules: [{when: [{key: "request.headers[x-role]", values: ["regular-user,admin"]}]}]}`, []string{"regular-user", "admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY prefix matches an element", `{action: DENY, rules: [{when: [{key: "request.headers[x-role]", values: ["adm*"]}]}]}`, []string{"user,admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY suffix across joined lines", `{action: DENY, rules: [{when: [{key: "request.headers[x-role]", values: ["*r,admin"]}]}]}`, []string{"user", "admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY presence with an empty value", `{action: DENY, rules: [{when: [{key: "request.headers[x-role]", values: ["*"]}]}]}`, []string{""}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY notValues, the one allowed value", denyNotAdmin, []string{"admin"}, true},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY notValues, list with another element", denyNotAdmin, []string{"admin,evil"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY notValues, another line", denyNotAdmin, []string{"admin", "evil"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): DENY notValues, absent header", denyNotAdmin, nil, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW exact, plain value", allowAdmin, []string{"admin"}, true},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW exact is the whole line, not an element", allowAdmin, []string{"admin,evil"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW exact, element last", allowAdmin, []string{"evil,admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW exact, every line must match", allowAdmin, []string{"admin", "evil"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW exact on a value holding a comma", `{rules: [{when: [{key: "request.headers[x-role]", values: ["a,b"]}]}]}`, []string{"a,b"}, true},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW notValues, other value", allowNotAdm, []string{"user"}, true},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW notValues excludes an element", allowNotAdm, []string{"user,admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW notValues excludes a line", allowNotAdm, []string{"user", "admin"}, false},
		{"CVE-2026-26308 (GHSA-ghc4-35x6-crw5): ALLOW notValues excludes the joined form", `{rules: [{when: [{key: "request.headers[x-role]", notValues: ["user,admin"]}]}]}`, []string{"user", "admin"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := compileT(t, []pol{P(tc.spec)}, httpbin, Options{})
			r := H("GET", "/", hdr("X-Role", tc.lines...))
			if d := e.Evaluate(&r); d.Allowed != tc.allow {
				t.Fatalf("lines %q: Allowed = %v, want %v (%+v)", tc.lines, d.Allowed, tc.allow, d)
			}
		})
	}
	t.Run("CVE-2026-26308 (GHSA-ghc4-35x6-crw5): CUSTOM selects a comma-joined line", func(t *testing.T) {
		e := compileT(t, []pol{P(`{action: CUSTOM, provider: {name: ext}, rules: [{when: [{key: "request.headers[x-role]", values: [admin]}]}]}`)}, httpbin, Options{})
		r := H("GET", "/", hdr("X-Role", "regular-user,admin"))
		if _, _, ok := e.Custom(&r); !ok {
			t.Fatal("CUSTOM did not select the request")
		}
	})
	t.Run("CVE-2026-26308 (GHSA-ghc4-35x6-crw5): AUDIT marks a comma-joined line", func(t *testing.T) {
		e := compileT(t, []pol{P(`{action: AUDIT, rules: [{when: [{key: "request.headers[x-role]", values: [admin]}]}]}`)}, httpbin, Options{})
		r := H("GET", "/", hdr("X-Role", "regular-user,admin"))
		if d := e.Evaluate(&r); !d.Audited {
			t.Fatalf("not audited: %+v", d)
		}
	})
}

// TestMatchJoined checks the piecewise match of joined lines against
// matching the joined string itself.
func TestMatchJoined(t *testing.T) {
	parts := []string{"", "a", "ab", "a,b", "b", "A"}
	pats := []string{"a", "ab", "a,b", "a,ab", ",", "a*", "a,*", "*b", "*,b", "*a,b", "*", "ab,a,b*", "*,", ",*", "A"}
	var lists [][]string
	for _, x := range parts {
		for _, y := range parts {
			lists = append(lists, []string{x, y})
			for _, z := range parts {
				lists = append(lists, []string{x, y, z})
			}
		}
	}
	for _, p := range pats {
		m := []strMatch{parseStrMatch(p, true)}
		for _, l := range lists {
			for _, fold := range []bool{false, true} {
				want := m[0].match(strings.Join(l, ","), fold)
				if got := anyMatchJoined(m, l, fold); got != want {
					t.Errorf("pattern %q, lines %q, fold %v: got %v, want %v", p, l, fold, got, want)
				}
			}
		}
	}
}
