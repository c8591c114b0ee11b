package authz

import "strings"

// Peer principals have Istio's form "<trust-domain>/ns/<ns>/sa/<sa>". The
// helpers below read its parts without allocating; ok is false when the
// part is missing.

func principalTrustDomain(p string) (string, bool) {
	i := strings.IndexByte(p, '/')
	if i <= 0 {
		return "", false
	}
	return p[:i], true
}

// principalNamespace returns the segment after the first "/ns/".
func principalNamespace(p string) (string, bool) {
	return segmentAfter(p, "/ns/")
}

// principalServiceAccount returns the segment after the first "/sa/" that
// follows the namespace.
func principalServiceAccount(p string) (string, bool) {
	i := strings.Index(p, "/ns/")
	if i < 0 {
		return "", false
	}
	return segmentAfter(p[i+len("/ns/"):], "/sa/")
}

func segmentAfter(p, marker string) (string, bool) {
	i := strings.Index(p, marker)
	if i < 0 {
		return "", false
	}
	rest := p[i+len(marker):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return rest, rest != ""
}
