// Package install renders the manifests that run Palisade's control plane
// on Kubernetes: Istio's CRDs (the official definitions shipped by
// istio.io/api, copied here by `go generate` and embedded), the
// istio-system namespace, the control plane's service account with the
// least RBAC it needs, its Deployment and Service, and the sidecar
// injection and validation webhook configurations with their CA bundle.
// `palisade install` prints them or applies them with server-side apply;
// the Helm chart in deploy/helm/palisade renders the same objects.
package install

//go:generate sh crds.sh
