package xds

import (
	"sync"
	"sync/atomic"
)

// Set is the full state of one proxy: type URL → that type's resources.
// A type with nothing for the proxy may be missing (nil).
type Set map[string]*Resources

// Add puts r into the set under its type. It is for building a set; a
// Resources already handed to a server must not change.
func (s Set) Add(r *Resource) {
	rs := s[r.Any.TypeUrl]
	if rs == nil {
		rs = NewResources(nil)
		s[r.Any.TypeUrl] = rs
	}
	rs.ByName[r.Name] = r
}

// Resources is one type's resources by name. Once handed to a server it
// never changes, so the control plane builds the types every proxy
// receives (the trust bundle, the services, the destination rules) once
// per config state and every proxy shares the same value: a proxy that
// already holds it needs nothing, found by comparing pointers, and the
// difference between two shared values is worked out once, not once per
// proxy.
type Resources struct {
	ByName map[string]*Resource

	id     uint64
	shared bool
	mu     sync.Mutex
	deltas map[uint64]Delta // from an older shared value, by its id
}

var resourcesSeq atomic.Uint64

// NewResources returns a set of one type's resources for one proxy.
func NewResources(byName map[string]*Resource) *Resources {
	if byName == nil {
		byName = map[string]*Resource{}
	}
	return &Resources{ByName: byName, id: resourcesSeq.Add(1)}
}

// NewShared returns a set that many proxies receive as it is: deltas
// from one shared set to another are memoized.
func NewShared(byName map[string]*Resource) *Resources {
	rs := NewResources(byName)
	rs.shared = true
	return rs
}

// SameAs reports whether rs and o hold the same names at the same
// versions.
func (rs *Resources) SameAs(o *Resources) bool {
	if rs.Len() != o.Len() {
		return false
	}
	for name, r := range rs.all() {
		if x := o.all()[name]; x == nil || x.Version != r.Version {
			return false
		}
	}
	return true
}

// Len is the number of resources; 0 for nil.
func (rs *Resources) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.ByName)
}

func (rs *Resources) all() map[string]*Resource {
	if rs == nil {
		return nil
	}
	return rs.ByName
}

// Delta is what moves a proxy from what it holds of one type to what it
// should hold: resources new or changed, and names removed.
type Delta struct {
	Upserts []*Resource
	Removed []string
}

// Empty reports whether the delta sends nothing.
func (d Delta) Empty() bool { return len(d.Upserts) == 0 && len(d.Removed) == 0 }

// Held is what a server knows one proxy holds of one type: the set it
// last sent, or, for a proxy that has just (re)subscribed, the versions
// the proxy said it has. The zero Held holds nothing.
type Held struct {
	sent     *Resources
	versions map[string]string
}

// HeldSent records that the proxy was sent rs.
func HeldSent(rs *Resources) Held { return Held{sent: rs} }

// HeldVersions records the name → version pairs a proxy reports when it
// subscribes (initial_resource_versions).
func HeldVersions(v map[string]string) Held { return Held{versions: v} }

// Diff returns what the proxy needs to hold want.
func (h Held) Diff(want *Resources) Delta {
	switch {
	case h.sent == want:
		return Delta{}
	case h.sent != nil && want != nil && h.sent.shared && want.shared:
		return want.deltaFrom(h.sent)
	case h.sent != nil || h.versions == nil:
		return diff(h.sent.all(), want.all())
	}
	var d Delta
	for name, r := range want.all() {
		if h.versions[name] != r.Version {
			d.Upserts = append(d.Upserts, r)
		}
	}
	for name := range h.versions {
		if _, ok := want.all()[name]; !ok {
			d.Removed = append(d.Removed, name)
		}
	}
	return d
}

// deltaFrom is the delta from an older shared set, memoized: every
// proxy moving between the same two states shares it.
func (rs *Resources) deltaFrom(old *Resources) Delta {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if d, ok := rs.deltas[old.id]; ok {
		return d
	}
	d := diff(old.ByName, rs.ByName)
	if rs.deltas == nil {
		rs.deltas = map[uint64]Delta{}
	}
	rs.deltas[old.id] = d
	return d
}

func diff(have, want map[string]*Resource) Delta {
	var d Delta
	for name, r := range want {
		if x := have[name]; x == nil || x.Version != r.Version {
			d.Upserts = append(d.Upserts, r)
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			d.Removed = append(d.Removed, name)
		}
	}
	return d
}
