//go:build tools

// Package tools pins the real kube-apiserver and kubectl that the
// Kubernetes-mode tests start and drive on loopback (see build.sh).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
