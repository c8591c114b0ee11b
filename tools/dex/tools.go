//go:build tools

// Package tools pins the Dex OIDC provider used by internal/jwt's end-to-end
// test. Build it with build.sh.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
