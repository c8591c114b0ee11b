// Package kube holds the end-to-end tests of Kubernetes mode: a real
// kube-apiserver and etcd on loopback (test/kubeapi), Istio's CRDs from
// istio.io/api, the workshop's YAML applied with kubectl, the control plane
// started with --kubeconfig and each "pod" a Pod object in the API with a
// local app process and palisade-proxy holding a token bound to it.
package kube
