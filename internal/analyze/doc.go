// Package analyze finds problems across resources that each validate on
// their own: a DestinationRule that turns TLS off toward workloads whose
// effective PeerAuthentication is STRICT, a CUSTOM AuthorizationPolicy
// naming an extension provider the mesh config lacks, selectors that match
// no workload, a RequestAuthentication that no AuthorizationPolicy makes
// mandatory, policies in namespaces nothing declares, and policies that
// pass validation but that the proxy's compilers refuse. Each finding has
// a stable code (PAL0001...) so scripts can match on it. `palisade analyze`
// prints them.
package analyze
