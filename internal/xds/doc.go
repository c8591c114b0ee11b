// Package xds is the config push protocol between the control plane and
// its proxies: Envoy's incremental (delta) aggregated discovery service over
// gRPC, carrying Istio's own resource messages (AuthorizationPolicy,
// PeerAuthentication, RequestAuthentication, DestinationRule, ServiceEntry,
// MeshConfig) and the trust bundle as an Envoy SDS Secret. Each resource is
// versioned by the hash of its bytes; the proxy ACKs what it applied and
// NACKs (with error_detail) what it could not, keeping its last good config.
//
// This package holds what both sides share and the proxy's client; the
// server lives in internal/controlplane.
package xds
