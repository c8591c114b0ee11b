package identity

import (
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// FuzzParseBundlePEM: bundles arrive from files and from the control plane.
// Whatever parses must round-trip through MarshalPEM.
func FuzzParseBundlePEM(f *testing.F) {
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("junk"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundlePEM(td, data)
		if err != nil {
			return
		}
		again, err := ParseBundlePEM(td, b.MarshalPEM())
		if err != nil || !again.Equal(b) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// FuzzParsePrincipal: principals come from users' AuthorizationPolicy YAML.
func FuzzParsePrincipal(f *testing.F) {
	for _, s := range []string{"cluster.local/ns/default/sa/sleep", "", "*", "cluster.local/ns/../sa/x", "a b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParsePrincipal(s)
		if err != nil {
			return
		}
		if ns, sa, err := Parse(id); err == nil && (ns == "" || sa == "") {
			t.Fatalf("Parse(%s) gave empty parts", id)
		}
		if _, err := ParsePrincipal(Principal(id)); err != nil {
			t.Fatalf("Principal(%s) does not parse back: %v", id, err)
		}
	})
}
