// Package svid is the proxy's certificate agent: it makes the workload's key
// locally (the key never leaves the process), obtains an X.509 SVID from the
// control plane's CA (Istio's IstioCertificateService) with a join token or,
// for renewal, its current certificate, renews it at a fraction of its
// lifetime, and hands it to crypto/tls and go-spiffe through lock-free
// reads. It also serves the SPIFFE Workload API on a unix socket and
// describes certificates for `palisade proxy-config secret`.
//
// This package is linked into the sidecar; it must not import internal/ca.
package svid
