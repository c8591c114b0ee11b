//go:build tools

// Package tools pins the Open Policy Agent Envoy plugin, the ext_authz gRPC
// server internal/extauthz's integration tests and benchmarks run against.
// Build it with ../build.sh.
package tools

import _ "github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin"
