// Package meshtest runs Palisade's real binaries for end-to-end tests:
// it builds them once per test binary, starts `palisade up` on a
// directory of YAML with its own state and ports, waits until every
// sidecar is connected, and stops it, checking no process is left behind.
package meshtest
