// Package bench holds Palisade's benchmark harness: cmd/meshbench runs the
// real binaries against a small backend on loopback, beside a direct
// connection and two other mTLS proxies (ghostunnel, HAProxy), the same
// Palisade pair captured by iptables in network namespaces (as root, beside
// the explicit pair in the same run), measures the
// control plane at scale in-process, collects the micro-benchmarks and
// writes BENCHMARKS.md. The package's own test file benchmarks compiling a
// proxy's config. run.sh is the entry point `make bench` calls.
package bench
