//go:build tools

// Package tools pins staticcheck, which `make check` runs.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
