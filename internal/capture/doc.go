// Package capture writes the iptables rules that send a workload's traffic
// through its sidecar without the app knowing: outbound TCP to the proxy's
// port 15001, inbound TCP to 15006, the proxy's own uid and gid left alone,
// DNS optionally to the proxy's resolver on 15053.
//
// The rules are the ones Istio's init container (`istio-iptables`, in
// istio/istio tools/istio-iptables/pkg/capture) writes, flag for flag and
// line for line: the same chains (ISTIO_INBOUND, ISTIO_IN_REDIRECT,
// ISTIO_OUTPUT, ISTIO_REDIRECT, ISTIO_OUTPUT_DNS, and for TPROXY the
// mangle chains ISTIO_DIVERT and ISTIO_TPROXY), in the same order, so a
// user who knows Istio's rules reads ours unchanged. [Build] is a pure
// function from a [Config] to a [RuleSet]; its tests run the cases of
// Istio's own rule-set tests and compare the output with testdata/cases,
// checked line for line against Istio's golden files for those cases
// (and against an Istio checkout itself with $PALISADE_ISTIO_SRC).
//
// [Apply] and [Cleanup] install and remove a rule set in the current
// network namespace with iptables-restore, on either backend Debian ships
// (nf_tables or legacy). Cleanup removes exactly the chains and jump rules
// a rule set adds, and leaves every other rule alone. IPv4 only.
package capture
