//go:build tools

// Package tools pins fortio, the load generator the benchmark harness
// drives. Build it with build.sh.
package tools

import _ "fortio.org/fortio"
