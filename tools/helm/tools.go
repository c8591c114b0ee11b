//go:build tools

// Package tools pins Helm, whose `helm template` renders deploy/helm/palisade
// in cmd/palisade's install test. Build it with build.sh.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
