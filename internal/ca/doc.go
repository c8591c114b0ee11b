// Package ca issues workload certificates: the mesh's certificate authority.
//
// An Authority signs X.509 SVIDs whose only URI SAN is the identity the caller
// proved, whatever the CSR asks for. Its signing authority comes from one of
// three places: a self-signed root and intermediate made on first start and
// kept in a state directory (with root rotation through a multi-root trust
// bundle), a plug-in intermediate read from Istio's cacerts layout, or an
// external CA reached over its own API: CFSSL's remote signer, or
// cert-manager, where CertManagerSigner plays istio-csr's part and turns
// each CSR into a cert-manager.io/v1 CertificateRequest for any issuer.
//
// Server serves Istio's IstioCertificateService over gRPC/TLS, authenticating
// callers with a chain of Authenticators: a one-time join token, or the
// caller's current mesh certificate for renewal.
//
// The proxy binary must not import this package: what it needs lives in
// internal/identity and internal/svid.
package ca
