package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// Backend is the iptables flavour Debian ships: nf_tables or legacy
// (istio-iptables' --force-iptables-binary).
type Backend string

// The backends; Auto picks one as istio-iptables does.
const (
	Auto   Backend = "auto"
	NFT    Backend = "nft"
	Legacy Backend = "legacy"
)

// ParseBackend reads --iptables-backend.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case Auto, NFT, Legacy:
		return b, nil
	}
	return "", fmt.Errorf("capture: iptables backend %q: want auto, nft or legacy", s)
}

func (b Backend) tool(suffix string) string { return "iptables-" + string(b) + suffix }

// Runner runs one command, with stdin when it is not empty, in the network
// namespace it stands for, and returns its combined output.
type Runner interface {
	Run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)
}

// Exec runs commands in the current network namespace; Prefix, when set,
// is put before each (e.g. `ip netns exec NAME`).
type Exec struct{ Prefix []string }

// Run implements Runner.
func (e Exec) Run(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, e.Prefix...), name), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Detect resolves Auto the way istio-iptables does: legacy when legacy
// tables already hold rules, else nf_tables when its tools work, else
// legacy when its tools work.
func Detect(ctx context.Context, r Runner, b Backend) (Backend, error) {
	if b != Auto {
		if _, err := r.Run(ctx, "", b.tool("-save")); err != nil {
			return "", fmt.Errorf("capture: iptables backend %s: %w", b, err)
		}
		return b, nil
	}
	legacyOut, legacyErr := r.Run(ctx, "", Legacy.tool("-save"))
	if legacyErr == nil && hasRules(legacyOut) {
		return Legacy, nil
	}
	_, nftErr := r.Run(ctx, "", NFT.tool("-save"))
	if nftErr == nil {
		return NFT, nil
	}
	if legacyErr == nil {
		return Legacy, nil
	}
	return "", fmt.Errorf("capture: no working iptables: %w", errors.Join(nftErr, legacyErr))
}

func hasRules(save []byte) bool {
	for _, l := range strings.Split(string(save), "\n") {
		if strings.HasPrefix(l, "-A ") {
			return true
		}
	}
	return false
}

// Apply installs set in the namespace r runs in: whatever an earlier
// Apply of the same chains left is removed first, then the whole set goes
// in with one `iptables-restore --noflush` (atomic per table), then the
// TPROXY policy route when the set has one.
func Apply(ctx context.Context, r Runner, b Backend, set *RuleSet) error {
	if err := Cleanup(ctx, r, b, set); err != nil {
		return err
	}
	if _, err := r.Run(ctx, set.Restore(), b.tool("-restore"), "--noflush"); err != nil {
		// A table that went in before the failing one comes out again.
		return errors.Join(fmt.Errorf("capture: apply: %w", err), Cleanup(ctx, r, b, set))
	}
	if t := set.TProxyRoute; t != nil {
		mark, table := strconv.FormatUint(uint64(t.Mark), 10), strconv.Itoa(t.Table)
		if _, err := r.Run(ctx, "", "ip", "-4", "rule", "add", "fwmark", mark, "lookup", table); err != nil {
			return errors.Join(fmt.Errorf("capture: tproxy rule: %w", err), Cleanup(ctx, r, b, set))
		}
		if _, err := r.Run(ctx, "", "ip", "-4", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", table); err != nil {
			return errors.Join(fmt.Errorf("capture: tproxy route: %w", err), Cleanup(ctx, r, b, set))
		}
	}
	return nil
}

// ourChains are the chain names Build can make, in any table: Istio's.
var ourChains = []string{ChainInbound, ChainInRedirect, ChainOutput, ChainRedirect, ChainOutputDNS,
	ChainDivert, ChainTProxy, ChainDrop}

// Cleanup removes what Apply of set adds, and nothing else: its rules in
// the built-in chains, then its chains. Istio's chain names are its own, so
// those chains go whatever flags made them, and with them every built-in
// rule that jumps to one (it could not stay once the chain is gone); the
// set's other built-in rules (interface exclusions, TPROXY marks) go when
// the set has them, so cleanup wants the flags the rules were applied
// with, as istio-iptables --cleanup-only does. Parts already gone are
// skipped, so Cleanup can run any number of times.
func Cleanup(ctx context.Context, r Runner, b Backend, set *RuleSet) error {
	ipt := b.tool("")
	var errs []error
	tables := set.Tables()
	for _, t := range []string{"mangle", "nat", "raw"} {
		if !slices.Contains(tables, t) {
			tables = append(tables, t)
		}
	}
	for _, table := range tables {
		listing, err := r.Run(ctx, "", ipt, "-w", "-t", table, "-S")
		if err != nil {
			errs = append(errs, fmt.Errorf("capture: cleanup %s: %w", table, err))
			continue
		}
		present := existingChains(listing)
		ours := set.Chains(table)
		for _, c := range ourChains {
			if present[c] && !slices.Contains(ours, c) {
				ours = append(ours, c)
			}
		}
		hooks := set.Hooks(table)
		for i := len(hooks) - 1; i >= 0; i-- {
			h := hooks[i]
			args := append([]string{"-w", "-t", table, "-C", h.Chain}, h.Args...)
			for tries := 0; tries < 16; tries++ {
				if _, err := r.Run(ctx, "", ipt, args...); err != nil {
					break // not there (or its target is gone)
				}
				args[3] = "-D"
				if _, err := r.Run(ctx, "", ipt, args...); err != nil {
					errs = append(errs, fmt.Errorf("capture: cleanup %s: %w", table, err))
					break
				}
				args[3] = "-C"
			}
		}
		if listing, err = r.Run(ctx, "", ipt, "-w", "-t", table, "-S"); err == nil {
			for _, rule := range strayJumps(listing, ours) {
				if _, err := r.Run(ctx, "", ipt, append([]string{"-w", "-t", table, "-D"}, rule...)...); err != nil {
					errs = append(errs, fmt.Errorf("capture: cleanup %s: %w", table, err))
				}
			}
		}
		for _, op := range []string{"-F", "-X"} {
			for _, c := range ours {
				if !present[c] {
					continue
				}
				if _, err := r.Run(ctx, "", ipt, "-w", "-t", table, op, c); err != nil {
					errs = append(errs, fmt.Errorf("capture: cleanup %s: %w", table, err))
				}
			}
		}
	}
	if t := set.TProxyRoute; t != nil {
		mark, table := strconv.FormatUint(uint64(t.Mark), 10), strconv.Itoa(t.Table)
		for tries := 0; tries < 16; tries++ {
			if _, err := r.Run(ctx, "", "ip", "-4", "rule", "del", "fwmark", mark, "lookup", table); err != nil {
				break
			}
		}
		r.Run(ctx, "", "ip", "-4", "route", "del", "local", "0.0.0.0/0", "dev", "lo", "table", table) //nolint:errcheck // absent is fine
	}
	return errors.Join(errs...)
}

// existingChains reads the user chains of an `iptables -S` listing.
func existingChains(listing []byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(string(listing), "\n") {
		if c, ok := strings.CutPrefix(l, "-N "); ok {
			out[strings.TrimSpace(c)] = true
		}
	}
	return out
}

// strayJumps lists, as -D arguments, the rules of built-in chains that
// jump to one of chains.
func strayJumps(listing []byte, chains []string) [][]string {
	var out [][]string
	for _, l := range strings.Split(string(listing), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "-A" || !builtin[f[1]] {
			continue
		}
		if j := slices.Index(f, "-j"); j > 0 && j+1 < len(f) && slices.Contains(chains, f[j+1]) {
			out = append(out, f[1:])
		}
	}
	return out
}
