// Package certmanager tests the control plane in istio-csr's role: every
// workload certificate is a cert-manager CertificateRequest, signed by
// cert-manager's own controllers (tools/certmanager) running against a
// real kube-apiserver and etcd (test/kubeapi).
package certmanager
