package capture

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"palisade.dev/palisade/test/peers"
)

// testNamespace makes a network namespace of the test's own and deletes it
// when the test ends; rules applied in it never touch the machine's.
func testNamespace(t *testing.T) Exec {
	t.Helper()
	peers.Root(t)
	name := fmt.Sprintf("pal-cap-%d-%d", os.Getpid(), nsSeq.Add(1))
	exec.Command("ip", "netns", "del", name).Run() //nolint:errcheck // leftover of a killed run
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return Exec{Prefix: []string{"ip", "netns", "exec", name}}
}

var nsSeq atomic.Int32

// state is every table's user chains and rules in the namespace, one per
// line with its table, without counters or the built-in chains' policies,
// so two states compare equal exactly when the rules do.
func state(t *testing.T, r Exec, b Backend) string {
	t.Helper()
	out, err := r.Run(context.Background(), "", b.tool("-save"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A "):
			lines = append(lines, table+" "+l)
		case strings.HasPrefix(l, ":"):
			if c := strings.Fields(l[1:]); len(c) > 0 && !builtin[c[0]] {
				lines = append(lines, table+" -N "+c[0])
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func ipt(t *testing.T, r Exec, b Backend, args ...string) string {
	t.Helper()
	out, err := r.Run(context.Background(), "", b.tool(""), args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// foreignRules are rules somebody else put in the same tables and built-in
// chains, one of them in a chain of its own; cleanup must leave them.
func foreignRules(t *testing.T, r Exec, b Backend) {
	t.Helper()
	ipt(t, r, b, "-t", "nat", "-N", "SOMEONE_ELSE")
	ipt(t, r, b, "-t", "nat", "-A", "SOMEONE_ELSE", "-p", "tcp", "--dport", "9", "-j", "RETURN")
	ipt(t, r, b, "-t", "nat", "-A", "OUTPUT", "-d", "10.250.9.9/32", "-j", "SOMEONE_ELSE")
	ipt(t, r, b, "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "7", "-j", "RETURN")
	ipt(t, r, b, "-t", "mangle", "-A", "OUTPUT", "-p", "udp", "--dport", "7", "-j", "RETURN")
	ipt(t, r, b, "-t", "raw", "-A", "OUTPUT", "-p", "udp", "--dport", "8", "-j", "RETURN")
}

func TestApplyCleanup(t *testing.T) {
	dnsAll := Default()
	dnsAll.RedirectDNS, dnsAll.CaptureAllDNS = true, true
	tproxy := Default()
	tproxy.Mode = TProxy
	tproxy.ExcludeInterfaces = []string{"eth9"}
	tproxy.DropInvalid = true
	for _, b := range []Backend{NFT, Legacy} {
		for _, tt := range []struct {
			name string
			cfg  Config
		}{{"default", Default()}, {"dns", dnsAll}, {"tproxy", tproxy}} {
			t.Run(string(b)+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				r := testNamespace(t)
				if got, err := Detect(ctx, r, b); err != nil || got != b {
					t.Fatalf("Detect(%s) = %s, %v", b, got, err)
				}
				foreignRules(t, r, b)
				before := state(t, r, b)
				set, err := Build(tt.cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := Apply(ctx, r, b, set); err != nil {
					t.Fatal(err)
				}
				applied := state(t, r, b)
				for _, table := range set.Tables() {
					for _, c := range set.Chains(table) {
						if !strings.Contains(ipt(t, r, b, "-t", table, "-S"), "-N "+c+"\n") {
							t.Errorf("table %s: chain %s missing after Apply", table, c)
						}
					}
				}
				if !strings.Contains(applied, "-A OUTPUT -j ISTIO_OUTPUT") {
					t.Errorf("no OUTPUT hook after Apply:\n%s", applied)
				}
				if set.TProxyRoute != nil && !strings.Contains(rules(t, r), "fwmark 0x539 lookup 133") {
					t.Errorf("no TPROXY policy rule after Apply:\n%s", rules(t, r))
				}
				// Applying again replaces, never doubles.
				if err := Apply(ctx, r, b, set); err != nil {
					t.Fatal(err)
				}
				if again := state(t, r, b); again != applied {
					t.Errorf("second Apply changed the rules:\n%s\nfirst:\n%s", again, applied)
				}
				if err := Cleanup(ctx, r, b, set); err != nil {
					t.Fatal(err)
				}
				if after := state(t, r, b); after != before {
					t.Errorf("Cleanup left a different state:\n%s\nbefore Apply:\n%s", after, before)
				}
				if strings.Contains(rules(t, r), "lookup 133") {
					t.Errorf("TPROXY policy rule left after Cleanup:\n%s", rules(t, r))
				}
				// Cleanup of nothing is fine.
				if err := Cleanup(ctx, r, b, set); err != nil {
					t.Errorf("second Cleanup: %v", err)
				}
			})
		}
	}
}

func rules(t *testing.T, r Exec) string {
	t.Helper()
	out, err := r.Run(context.Background(), "", "ip", "-4", "rule", "list")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestCleanupAfterFlagChange: the rules were applied with DNS capture and
// cleanup is asked with other flags; the jumps into our chains still go.
func TestCleanupAfterFlagChange(t *testing.T) {
	ctx := context.Background()
	r := testNamespace(t)
	b, err := Detect(ctx, r, Auto)
	if err != nil {
		t.Fatal(err)
	}
	before := state(t, r, b)
	withDNS := Default()
	withDNS.RedirectDNS, withDNS.CaptureAllDNS = true, true
	withDNS.ExcludeInterfaces = []string{"eth7"}
	set, err := Build(withDNS)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, r, b, set); err != nil {
		t.Fatal(err)
	}
	plain, err := Build(Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(ctx, r, b, plain); err != nil {
		t.Fatal(err)
	}
	after := state(t, r, b)
	if strings.Contains(after, "ISTIO_") {
		t.Errorf("chains or jumps left:\n%s", after)
	}
	// What is not a jump (the exclude-interface RETURN rules) needs the
	// flags it was applied with, as with istio-iptables --cleanup-only.
	if !strings.Contains(after, "-o eth7 -j RETURN") {
		t.Errorf("the other set's own hook went too:\n%s", after)
	}
	if err := Cleanup(ctx, r, b, set); err != nil {
		t.Fatal(err)
	}
	if after := state(t, r, b); after != before {
		t.Errorf("state after both cleanups:\n%s\nbefore:\n%s", after, before)
	}
}
