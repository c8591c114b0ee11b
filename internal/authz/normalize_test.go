package authz

import (
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

func TestNormalizePath(t *testing.T) {
	const (
		none   = meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE
		def    = meshv1alpha1.MeshConfig_ProxyPathNormalization_DEFAULT
		base   = meshv1alpha1.MeshConfig_ProxyPathNormalization_BASE
		merge  = meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES
		decode = meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES
	)
	tests := []struct {
		name   string
		mode   NormalizationMode
		raw    string
		want   string
		reject bool
	}{
		{name: "normalization: NONE keeps the path", mode: none, raw: "/a/../b//c%2Fd", want: "/a/../b//c%2Fd"},
		{name: "normalization: NONE still drops the fragment", mode: none, raw: "/a#b", want: "/a"},
		{name: "normalization: NONE still rejects %00", mode: none, raw: "/a%00", reject: true},
		{name: "normalization: DEFAULT is BASE", mode: def, raw: "/a/../b", want: "/b"},
		{name: "normalization: BASE resolves dot-dot", mode: base, raw: "/a/../b", want: "/b"},
		{name: "normalization: BASE resolves dot", mode: base, raw: "/public/./data/abc/../xyz", want: "/public/data/xyz"},
		{name: "normalization: BASE dot-dot above root", mode: base, raw: "/../../a", want: "/a"},
		{name: "normalization: BASE trailing dot-dot keeps the slash", mode: base, raw: "/a/b/..", want: "/a/"},
		{name: "normalization: BASE backslash", mode: base, raw: "/some\\data", want: "/some/data"},
		{name: "normalization: BASE decodes unreserved once", mode: base, raw: "/some%2fdata/%61%62%63", want: "/some%2Fdata/abc"},
		{name: "normalization: BASE decodes %2d %2e %5f %7e", mode: base, raw: "/%2d%2E%5f%7E", want: "/-._~"},
		{name: "normalization: BASE keeps reserved escapes, upper-case hex", mode: base, raw: "/a%3fb%2fc", want: "/a%3Fb%2Fc"},
		{name: "normalization: BASE no double decoding", mode: base, raw: "/%252F", want: "/%252F"},
		{name: "normalization: BASE encoded dots are dot segments", mode: base, raw: "/a/%2e%2e/b", want: "/b"},
		{name: "normalization: BASE keeps //", mode: base, raw: "/a//b", want: "/a//b"},
		{name: "normalization: BASE keeps %5C", mode: base, raw: "/a%5cb", want: "/a%5Cb"},
		{name: "normalization: BASE percent-encodes non-ASCII", mode: base, raw: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		{name: "normalization: MERGE_SLASHES", mode: merge, raw: "/some//data///abc", want: "/some/data/abc"},
		{name: "normalization: MERGE_SLASHES after dots", mode: merge, raw: "/a//../b", want: "/a/b"},
		{name: "normalization: DECODE_AND_MERGE_SLASHES %2f", mode: decode, raw: "/a%2f/b", want: "/a/b"},
		{name: "normalization: DECODE_AND_MERGE_SLASHES %2F and dots", mode: decode, raw: "/public/..%2Fadmin", want: "/admin"},
		{name: "normalization: DECODE_AND_MERGE_SLASHES %5C", mode: decode, raw: "/a%5Cb", want: "/a/b"},
		{name: "normalization: DECODE_AND_MERGE_SLASHES %5c", mode: decode, raw: "/a%5cb", want: "/a/b"},
		{name: "normalization: query is kept, not normalized", mode: base, raw: "/a/../b?x=/../%2f", want: "/b?x=/../%2f"},
		{name: "normalization: fragment dropped before the query", mode: base, raw: "/a#x?y", want: "/a"},
		{name: "normalization: %00 rejected", mode: base, raw: "/a%00b", reject: true},
		{name: "normalization: malformed escape rejected", mode: base, raw: "/a%zz", reject: true},
		{name: "normalization: truncated escape rejected", mode: base, raw: "/a%2", reject: true},
		{name: "normalization: control character rejected", mode: base, raw: "/a\x01", reject: true},
		{name: "normalization: space rejected", mode: base, raw: "/a b", reject: true},
		{name: "normalization: relative path rejected", mode: base, raw: "a/b", reject: true},
		{name: "normalization: empty path rejected", mode: base, raw: "", reject: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reject := NormalizePath(tc.mode, tc.raw)
			if reject != tc.reject {
				t.Fatalf("NormalizePath(%v, %q) reject = %v, want %v (got %q)", tc.mode, tc.raw, reject, tc.reject, got)
			}
			if !reject && got != tc.want {
				t.Fatalf("NormalizePath(%v, %q) = %q, want %q", tc.mode, tc.raw, got, tc.want)
			}
		})
	}
}

// FuzzNormalizePath checks that normalization never panics, is
// idempotent, and in every mode but NONE yields no dot segments, no
// backslash and no fragment.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/a%2fb", "/a\\b", "/%2e%2e/", "/a#b?c", "//a", "/a%00", "/%zz", "/a;b/..;/c"} {
		f.Add(uint8(2), s)
	}
	f.Fuzz(func(t *testing.T, m uint8, raw string) {
		mode := NormalizationMode(m % 5)
		got, reject := NormalizePath(mode, raw)
		if reject {
			return
		}
		again, reject2 := NormalizePath(mode, got)
		if reject2 || again != got {
			t.Fatalf("not idempotent in %v: %q -> %q -> %q (reject %v)", mode, raw, got, again, reject2)
		}
		if mode == meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE {
			return
		}
		p := pathForMatch(got)
		if containsAny(p, "\\", "/./", "/../", "#") || hasSuffixAny(p, "/.", "/..") {
			t.Fatalf("%v: %q normalized to %q", mode, raw, got)
		}
	})
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
	}
	return false
}

func hasSuffixAny(s string, sufs ...string) bool {
	for _, suf := range sufs {
		if len(s) >= len(suf) && s[len(s)-len(suf):] == suf {
			return true
		}
	}
	return false
}
