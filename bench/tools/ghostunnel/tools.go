//go:build tools

// Package tools pins ghostunnel, the Go mTLS proxy the benchmark harness
// measures Palisade against. Build it with build.sh.
package tools

import _ "github.com/ghostunnel/ghostunnel"
