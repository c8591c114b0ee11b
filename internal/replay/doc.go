// Package replay answers "what would change if I applied this?": it
// replays the requests and connections sidecars recorded against a
// proposed set of PeerAuthentication and AuthorizationPolicy resources,
// through the same compile path the sidecars use, and lists every
// decision that would differ. It also suggests the least-privilege
// AuthorizationPolicies that allow exactly the traffic recorded.
package replay
