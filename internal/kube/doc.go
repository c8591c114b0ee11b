// Package kube is the control plane's Kubernetes mode: the API server as
// config provider (Istio's CRDs and the `istio` mesh ConfigMap, decoded and
// validated by internal/config exactly as files are), the workload
// registry (pods behind Services through EndpointSlices), service-account
// token authentication for the CA (TokenReview), and the publication of
// the root bundle as the istio-ca-root-cert ConfigMap in every namespace.
// The proxy never links this package.
package kube
