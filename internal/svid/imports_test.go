package svid

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoSigningCodeInTheProxy: the sidecar links this package and
// internal/identity; neither may pull in the CA's signing code.
func TestNoSigningCodeInTheProxy(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "palisade.dev/palisade/internal/svid", "palisade.dev/palisade/internal/identity").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "palisade.dev/palisade/internal/ca" {
			t.Fatal("internal/svid or internal/identity depends on internal/ca")
		}
	}
}
