package peers

import (
	"os"
	"testing"
)

// Root skips a test that needs root (network namespaces, iptables) when it
// runs as another user, with the same skip-or-fail rule as Binary: under
// CI it fails. It also needs `ip` (iproute2).
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root (network namespaces, iptables)")
	}
	Command(t, "ip")
}
