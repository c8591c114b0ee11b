package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ControlPlaneNamespace and ControlPlaneServiceAccount name the identity the
// control plane's own serving certificate carries. Proxies dialing the CA
// accept only this identity (secure naming for the control plane).
const (
	ControlPlaneNamespace      = "istio-system"
	ControlPlaneServiceAccount = "palisade-control-plane"
)

// ErrNotWorkloadID is returned by Parse for a SPIFFE ID that does not have the
// /ns/<namespace>/sa/<service-account> shape.
var ErrNotWorkloadID = errors.New("not a workload identity (want /ns/<namespace>/sa/<service-account>)")

// ForServiceAccount returns spiffe://<td>/ns/<ns>/sa/<sa>.
func ForServiceAccount(td spiffeid.TrustDomain, ns, sa string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, errors.New("identity: for service account: empty trust domain")
	}
	if ns == "" || sa == "" {
		return spiffeid.ID{}, fmt.Errorf("identity: for service account: namespace %q and service account %q must both be set", ns, sa)
	}
	id, err := spiffeid.FromSegments(td, "ns", ns, "sa", sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: for service account %s/%s: %w", ns, sa, err)
	}
	return id, nil
}

// ControlPlaneID is the SPIFFE ID of the control plane (and its CA server) in
// trust domain td: spiffe://<td>/ns/istio-system/sa/palisade-control-plane.
func ControlPlaneID(td spiffeid.TrustDomain) spiffeid.ID {
	id, err := ForServiceAccount(td, ControlPlaneNamespace, ControlPlaneServiceAccount)
	if err != nil {
		// Only a zero trust domain fails, and then the zero ID is the answer.
		return spiffeid.ID{}
	}
	return id
}

// Parse returns the namespace and service account of a workload ID.
func Parse(id spiffeid.ID) (ns, sa string, err error) {
	if id.IsZero() {
		return "", "", fmt.Errorf("identity: parse: empty SPIFFE ID")
	}
	segs := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(segs) != 4 || segs[0] != "ns" || segs[2] != "sa" || segs[1] == "" || segs[3] == "" {
		return "", "", fmt.Errorf("identity: parse %q: %w", id, ErrNotWorkloadID)
	}
	return segs[1], segs[3], nil
}

// Principal is the ID in Istio's principal form, without the scheme:
// "cluster.local/ns/default/sa/sleep". AuthorizationPolicy's
// source.principals and the connection's peer principal use this form.
func Principal(id spiffeid.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.TrustDomain().Name() + id.Path()
}

// ParsePrincipal is the inverse of Principal.
func ParsePrincipal(p string) (spiffeid.ID, error) {
	id, err := spiffeid.FromString("spiffe://" + p)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: parse principal %q: %w", p, err)
	}
	return id, nil
}
