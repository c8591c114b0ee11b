package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The sidecar runs beside every workload: it must stay lean and must never
// hold the CA's signing code.
func TestProxyDoesNotLinkHeavyOrPrivilegedPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps returned only %d packages: %q", len(deps), out)
	}
	forbidden := []string{
		"palisade.dev/palisade/internal/ca",
		"palisade.dev/palisade/internal/controlplane",
		"palisade.dev/palisade/internal/dashboard",
		"palisade.dev/palisade/internal/replay",
		"github.com/chromedp",
		"palisade.dev/palisade/internal/localmesh",
		"k8s.io/client-go",
		"sigs.k8s.io/controller-runtime",
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("palisade-proxy links %s", d)
			}
		}
	}
	for _, want := range []string{"palisade.dev/palisade/internal/proxy", "palisade.dev/palisade/internal/svid"} {
		found := false
		for _, d := range deps {
			found = found || d == want
		}
		if !found {
			t.Errorf("palisade-proxy does not link %s; is the test looking at the right package?", want)
		}
	}
}
