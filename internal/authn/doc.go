// Package authn resolves PeerAuthentication: which mTLS mode (STRICT,
// PERMISSIVE, DISABLE) a workload's inbound port runs in, and which
// resource decided it, with Istio's precedence: a workload-selecting policy
// over the namespace's policy over the mesh-wide policy in the root
// namespace, a port-level setting over the policy's own mode, and UNSET
// inheriting from the level above. With no policy at all the mode is
// PERMISSIVE, Istio's default.
package authn
