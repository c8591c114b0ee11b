//go:build tools

// Package tools pins the Open Policy Agent CLI, used for `opa test` on the
// workshop policy. Build it with ../build.sh.
package tools

import _ "github.com/open-policy-agent/opa"
