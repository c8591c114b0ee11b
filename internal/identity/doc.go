// Package identity holds workload identities and the trust that verifies them:
// SPIFFE IDs of the form spiffe://<trust-domain>/ns/<namespace>/sa/<account>,
// Istio's principal form of those IDs, trust bundles that may hold several
// roots (so a root can be rotated without downtime), and verification of a
// peer's certificate chain against a bundle.
//
// The data plane imports this package; it must never import the signing code
// in internal/ca.
package identity
