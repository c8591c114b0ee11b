package isolate_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/netns"
	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

// rulesOf is every rule and user chain in n, sorted, counters left out.
func rulesOf(t *testing.T, n netns.Namespace, backend string) string {
	t.Helper()
	out, err := n.Run(context.Background(), "", "iptables-"+backend+"-save")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A "), strings.HasPrefix(l, ":ISTIO"), strings.HasPrefix(l, ":SOMEONE"):
			lines = append(lines, table+" "+strings.Fields(l)[0]+" "+strings.Join(strings.Fields(l)[1:], " "))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestProxyInit: the real `palisade-proxy init`, as an injected pod's init
// container runs it, in a namespace of the test's own, on both backends:
// the pod's rules go in, and --cleanup takes out exactly them.
func TestProxyInit(t *testing.T) {
	peers.Root(t)
	b := meshtest.Build(t)
	ctx := context.Background()
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			n := netns.Namespace(fmt.Sprintf("pal-init-%d-%s", os.Getpid(), backend))
			netns.Delete(ctx, n) //nolint:errcheck // a killed run's
			if err := netns.Add(ctx, n); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := netns.Delete(ctx, n); err != nil {
					t.Error(err)
				}
			})
			ipt := "iptables-" + backend
			for _, rule := range [][]string{
				{"-t", "nat", "-N", "SOMEONE_ELSE"},
				{"-t", "nat", "-A", "OUTPUT", "-d", "10.250.9.9/32", "-j", "SOMEONE_ELSE"},
				{"-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "7", "-j", "RETURN"},
			} {
				if _, err := n.Run(ctx, "", ipt, rule...); err != nil {
					t.Fatal(err)
				}
			}
			before := rulesOf(t, n, backend)
			// No --iptables-backend: init finds the backend the
			// namespace's rules are on, as istio-iptables does.
			pod := []string{"init", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"}
			if _, err := n.Run(ctx, "", b.Proxy, pod...); err != nil {
				t.Fatal(err)
			}
			after := rulesOf(t, n, backend)
			for _, want := range []string{
				"nat -A OUTPUT -j ISTIO_OUTPUT",
				"nat -A PREROUTING -p tcp -j ISTIO_INBOUND",
				"nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT",
				"nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
				"nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
				"nat -A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN",
			} {
				if !strings.Contains(after, want) {
					t.Errorf("after init: no %q in\n%s", want, after)
				}
			}
			if _, err := n.Run(ctx, "", b.Proxy, "init", "--cleanup", "--iptables-backend", backend); err != nil {
				t.Fatal(err)
			}
			if got := rulesOf(t, n, backend); got != before {
				t.Errorf("after init --cleanup:\n%s\nbefore init:\n%s", got, before)
			}
		})
	}
}
