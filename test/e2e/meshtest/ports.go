package meshtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"

	"palisade.dev/palisade/internal/localmesh"
)

// Ports below Linux's ephemeral range (32768 and up) are never handed to
// a process that listens on or dials from port 0, so one picked here
// stays free between the test's check and the listener a child process
// opens on it seconds later.
const (
	heldLow  = 20000
	heldHigh = 32000
)

// HeldAddr is a free 127.0.0.1 address below the ephemeral range, for a
// server started later by another process, or stopped and started again
// on the same address: palisade up's own choice (localmesh.FreeAddr).
func HeldAddr(t testing.TB) string {
	t.Helper()
	addr, err := localmesh.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// GatewayOffset picks a --gateway-port-offset for which every one of the
// gateway's ports (80 and 443 when none are given) lands on a free
// 127.0.0.1 port below the ephemeral range.
func GatewayOffset(t testing.TB, ports ...int) int {
	t.Helper()
	if len(ports) == 0 {
		ports = []int{80, 443}
	}
	for range 1000 {
		off := heldLow + rand.IntN(heldHigh-heldLow-1000)
		ok := true
		for _, p := range ports {
			if !free(p + off) {
				ok = false
				break
			}
		}
		if ok {
			return off
		}
	}
	t.Fatalf("no free offset for gateway ports %v", ports)
	return 0
}

func free(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
