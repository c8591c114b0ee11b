package capture

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Chain names, as Istio spells them.
const (
	ChainInbound    = "ISTIO_INBOUND"
	ChainInRedirect = "ISTIO_IN_REDIRECT"
	ChainOutput     = "ISTIO_OUTPUT"
	ChainRedirect   = "ISTIO_REDIRECT"
	ChainOutputDNS  = "ISTIO_OUTPUT_DNS"
	ChainDivert     = "ISTIO_DIVERT"
	ChainTProxy     = "ISTIO_TPROXY"
	ChainDrop       = "ISTIO_DROP"
)

// outboundMark marks the proxy's own loopback packets in TPROXY mode
// (Istio's constants.OutboundMark).
const outboundMark = "1338"

// dnsPort is where the sidecar's DNS proxy listens (Istio's
// IstioAgentDNSListenerPort).
const dnsPort = "15053"

// builtin are the chains and targets iptables has without being told.
var builtin = map[string]bool{"INPUT": true, "OUTPUT": true, "FORWARD": true, "PREROUTING": true,
	"POSTROUTING": true, "ACCEPT": true, "RETURN": true, "DROP": true}

// Rule is one iptables rule: appended to Chain, or inserted at Insert (1-based)
// when Insert > 0.
type Rule struct {
	Table  string
	Chain  string
	Insert int
	Args   []string
}

// String is the rule as iptables-restore reads it.
func (r Rule) String() string {
	head := "-A " + r.Chain
	if r.Insert > 0 {
		head = "-I " + r.Chain + " " + strconv.Itoa(r.Insert)
	}
	return head + " " + strings.Join(r.Args, " ")
}

// target is the rule's -j target, or "".
func (r Rule) target() string {
	if n := len(r.Args); n >= 2 && r.Args[n-2] == "-j" {
		return r.Args[n-1]
	}
	return ""
}

// RuleSet is the compiled capture: rules in the order Istio writes them,
// and the TPROXY policy route when the mode needs one.
type RuleSet struct {
	Rules []Rule
	// TProxyRoute is set in TPROXY mode: `ip rule add fwmark MARK lookup
	// TABLE` and `ip route add local default dev lo table TABLE`.
	TProxyRoute *TProxyRoute
}

// TProxyRoute is the policy routing TPROXY needs.
type TProxyRoute struct {
	Mark  uint32
	Table int
}

// Tables lists the tables the rule set writes, sorted.
func (s *RuleSet) Tables() []string {
	var ts []string
	for _, r := range s.Rules {
		if !slices.Contains(ts, r.Table) {
			ts = append(ts, r.Table)
		}
	}
	slices.Sort(ts)
	return ts
}

// Chains lists the chains the rule set creates in table, in creation order:
// those it adds rules to, then those it only jumps to.
func (s *RuleSet) Chains(table string) []string {
	var cs []string
	add := func(c string) {
		if !builtin[c] && !slices.Contains(cs, c) {
			cs = append(cs, c)
		}
	}
	for _, r := range s.Rules {
		if r.Table == table {
			add(r.Chain)
		}
	}
	for _, r := range s.Rules {
		if t := r.target(); r.Table == table && t != "" {
			add(t)
		}
	}
	return cs
}

// Hooks lists the rules the set adds to iptables' built-in chains of
// table: the only rules outside its own chains, so the ones cleanup must
// delete one by one.
func (s *RuleSet) Hooks(table string) []Rule {
	var hs []Rule
	for _, r := range s.Rules {
		if r.Table == table && builtin[r.Chain] {
			hs = append(hs, r)
		}
	}
	return hs
}

// Restore is the rule set as `iptables-restore --noflush` input: the same
// text istio-iptables feeds it, tables in name order.
func (s *RuleSet) Restore() string {
	var b strings.Builder
	for _, t := range s.Tables() {
		fmt.Fprintf(&b, "* %s\n", t)
		for _, c := range s.Chains(t) {
			fmt.Fprintf(&b, "-N %s\n", c)
		}
		for _, r := range s.Rules {
			if r.Table == t {
				b.WriteString(r.String())
				b.WriteByte('\n')
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

type builder struct{ rules []Rule }

func (b *builder) add(table, chain string, args ...string) {
	b.rules = append(b.rules, Rule{Table: table, Chain: chain, Args: args})
}

func (b *builder) insert(table, chain string, pos int, args ...string) {
	b.rules = append(b.rules, Rule{Table: table, Chain: chain, Insert: pos, Args: args})
}

func portStr(p uint16) string { return strconv.Itoa(int(p)) }
