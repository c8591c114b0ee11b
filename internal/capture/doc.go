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
// function from a [Config] to a [RuleSet]; its tests compare the output
// with Istio's own golden files (testdata/istio, sources named there).
//
// [Apply] and [Cleanup] install and remove a rule set in the current
// network namespace with iptables-restore, on either backend Debian ships
// (nf_tables or legacy). Cleanup removes exactly the chains and jump rules
// a rule set adds, and leaves every other rule alone. IPv4 only.
package capture
