// Package kubeapi runs a real Kubernetes API server for tests: Debian's
// etcd and the pinned kube-apiserver and kubectl (tools/kube), on 127.0.0.1
// free ports, with a service-account signing key, RBAC, and an admin user.
// No controller-manager or scheduler runs: tests create what those would
// (ServiceAccounts, EndpointSlices) and start each "pod" as a local process
// with a token from the TokenRequest API bound to its Pod object.
package kubeapi
