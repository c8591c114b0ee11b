package config

import (
	"strings"
	"testing"
)

// FuzzDecode checks that no input makes Decode panic, and that every error
// it returns carries a file:line prefix.
func FuzzDecode(f *testing.F) {
	for _, tc := range brokenCases {
		f.Add([]byte(tc.input))
	}
	f.Add([]byte("a: &x [*x, *x]\n"))
	f.Add([]byte("base: &b {name: x}\nmetadata:\n  <<: *b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode("f.yaml", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml:") {
					t.Fatalf("error line without position: %q", line)
				}
			}
		}
		for _, r := range rs {
			if r.Meta.Name == "" || r.Kind == "" {
				t.Fatalf("resource without name or kind: %+v", r)
			}
		}
	})
}

func FuzzDecodeMesh(f *testing.F) {
	f.Add([]byte("trustDomain: a\n"))
	f.Add([]byte("extensionProviders:\n- name: x\n  envoyExtAuthzGrpc: {service: s, port: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mc, err := DecodeMesh("m.yaml", data)
		if err == nil && (mc.GetTrustDomain() == "" || mc.GetRootNamespace() == "") {
			t.Fatalf("defaults not applied: %v", mc)
		}
	})
}
