//go:build tools

// Package tools pins the CFSSL server used by internal/ca's external-CA
// integration test. Build it with build.sh.
package tools

import _ "github.com/cloudflare/cfssl/cmd/cfssl"
