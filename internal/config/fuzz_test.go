package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzDecode checks that no input makes decoding panic (it calls decode,
// not Decode, whose recover would hide the panic), and that every error it
// returns carries a file:line prefix.
func FuzzDecode(f *testing.F) {
	for _, tc := range brokenCases {
		f.Add([]byte(tc.input))
	}
	f.Add([]byte("a: &x [*x, *x]\n"))
	f.Add([]byte("base: &b {name: x}\nmetadata:\n  <<: *b\n"))
	f.Add([]byte(mergeChain(8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := decode("f.yaml", data)
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

// FuzzDecodeMesh checks decodeMesh (DecodeMesh without its recover) the
// same way.
func FuzzDecodeMesh(f *testing.F) {
	f.Add([]byte("trustDomain: a\n"))
	f.Add([]byte("extensionProviders:\n- name: x\n  envoyExtAuthzGrpc: {service: s, port: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mc, err := decodeMesh("m.yaml", data)
		if err == nil && (mc.GetTrustDomain() == "" || mc.GetRootNamespace() == "") {
			t.Fatalf("defaults not applied: %v", mc)
		}
	})
}

// mergeChain is a Namespace whose labels merge two aliases of a mapping
// that merges two aliases of the one before, n deep: 2^n merges if each
// alias is expanded anew.
func mergeChain(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  annotations:\n    m0: &m0 {a: b}\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "    m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	fmt.Fprintf(&b, "  labels: {<<: [*m%d, *m%d]}\n", n-1, n-1)
	return b.String()
}

// Found reading toJSON while fuzzing it: merge keys over aliases took time
// exponential in the depth of the chain (a 2 KB file would hold the
// daemon's reload for hours; 20 deep took 1.6 s).
func TestDecodeMergeChain(t *testing.T) {
	start := time.Now()
	_, err := decode("f.yaml", []byte(mergeChain(60)))
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("decode took %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "f.yaml:") {
		t.Fatalf("err = %v, want a positioned error (annotations are not strings)", err)
	}
}
