package ca

import (
	"time"

	"palisade.dev/palisade/internal/identity"
)

// RootStatus describes one root of the bundle and its intermediate.
type RootStatus struct {
	ID                   int               `json:"id"`
	State                string            `json:"state"` // "issuing", "pending" (grace period) or "retiring"
	Root                 identity.RootInfo `json:"root"`
	KeyType              string            `json:"keyType"`
	Intermediate         string            `json:"intermediate"`
	IntermediateNotAfter time.Time         `json:"intermediateNotAfter"`
	ActiveAt             time.Time         `json:"activeAt,omitzero"`
	LastIssuedExpiry     time.Time         `json:"lastIssuedExpiry,omitzero"`
}

// Status describes the CA for `palisade ca show` and the admin API.
type Status struct {
	Mode        string       `json:"mode"` // "self-signed" or "plug-in"
	TrustDomain string       `json:"trustDomain"`
	StateDir    string       `json:"stateDir,omitempty"`
	Roots       []RootStatus `json:"roots"`
	BundleSize  int          `json:"bundleSize"`
}

// Status reports the CA's roots at the clock's current time.
func (a *Authority) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Clock()
	a.refreshLocked(now)
	s := Status{Mode: a.mode, TrustDomain: a.opts.TrustDomain.Name(), StateDir: a.dir, BundleSize: a.bundle.Len()}
	for _, g := range a.gens {
		s.Roots = append(s.Roots, a.statusOfLocked(g, now))
	}
	return s
}

func (a *Authority) statusOfLocked(g *generation, now time.Time) RootStatus {
	state := "retiring"
	switch {
	case g == a.issuer:
		state = "issuing"
	case g.activeAt.After(now):
		state = "pending"
	}
	info, _ := identity.NewBundle(a.opts.TrustDomain, g.root)
	return RootStatus{
		ID: g.id, State: state, Root: info.Info()[0],
		KeyType:              keyTypeOf(g.intermediates[0].PublicKey),
		Intermediate:         g.intermediates[0].Subject.String(),
		IntermediateNotAfter: g.intermediates[0].NotAfter.UTC(),
		ActiveAt:             g.activeAt.UTC(),
		LastIssuedExpiry:     g.maxNotAfter.UTC(),
	}
}
