package xds

import (
	"fmt"
	"sort"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

func res(t *testing.T, name, value string) *Resource {
	t.Helper()
	r, err := NewResource(name, wrapperspb.String(value))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func describe(d Delta) string {
	var up []string
	for _, r := range d.Upserts {
		up = append(up, r.Name)
	}
	sort.Strings(up)
	rm := append([]string(nil), d.Removed...)
	sort.Strings(rm)
	return fmt.Sprintf("up=%v removed=%v", up, rm)
}

func TestHeldDiff(t *testing.T) {
	a1, a2, b1, c1 := res(t, "a", "1"), res(t, "a", "2"), res(t, "b", "1"), res(t, "c", "1")
	set := func(shared bool, rs ...*Resource) *Resources {
		m := map[string]*Resource{}
		for _, r := range rs {
			m[r.Name] = r
		}
		if shared {
			return NewShared(m)
		}
		return NewResources(m)
	}
	old := set(false, a1, b1)
	oldShared := set(true, a1, b1)
	for _, c := range []struct {
		name string
		held Held
		want *Resources
		out  string
	}{
		{"nothing held, nothing wanted", Held{}, nil, "up=[] removed=[]"},
		{"nothing held: everything is sent", Held{}, set(false, a1, b1), "up=[a b] removed=[]"},
		{"the very set held", HeldSent(old), old, "up=[] removed=[]"},
		{"an equal set held", HeldSent(old), set(false, a1, b1), "up=[] removed=[]"},
		{"one changed, one removed, one new", HeldSent(old), set(false, a2, c1), "up=[a c] removed=[b]"},
		{"everything removed", HeldSent(old), nil, "up=[] removed=[a b]"},
		{"shared to shared", HeldSent(oldShared), set(true, a2, b1), "up=[a] removed=[]"},
		{"versions reported on subscribe", HeldVersions(map[string]string{"a": a1.Version, "b": "stale"}), set(false, a1, b1, c1), "up=[b c] removed=[]"},
		{"versions of a resource gone", HeldVersions(map[string]string{"a": a1.Version, "gone": "1"}), set(false, a1), "up=[] removed=[gone]"},
		{"empty versions reported", HeldVersions(map[string]string{}), set(false, a1), "up=[a] removed=[]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := describe(c.held.Diff(c.want)); got != c.out {
				t.Errorf("got %s, want %s", got, c.out)
			}
		})
	}
}

// The delta between two shared sets is worked out once and handed to
// every proxy that moves between them.
func TestSharedDeltaMemoized(t *testing.T) {
	a1, a2 := res(t, "a", "1"), res(t, "a", "2")
	old := NewShared(map[string]*Resource{"a": a1})
	next := NewShared(map[string]*Resource{"a": a2})
	d1 := HeldSent(old).Diff(next)
	d2 := HeldSent(old).Diff(next)
	if len(d1.Upserts) != 1 || &d1.Upserts[0] != &d2.Upserts[0] {
		t.Errorf("two proxies got separately computed deltas: %v %v", d1, d2)
	}
	if len(next.deltas) != 1 {
		t.Errorf("memo holds %d deltas, want 1", len(next.deltas))
	}
}

func TestSameAs(t *testing.T) {
	a1, a2, b1 := res(t, "a", "1"), res(t, "a", "2"), res(t, "b", "1")
	x := NewResources(map[string]*Resource{"a": a1, "b": b1})
	for _, c := range []struct {
		name string
		o    *Resources
		want bool
	}{
		{"same names and versions", NewResources(map[string]*Resource{"a": res(t, "a", "1"), "b": b1}), true},
		{"a version differs", NewResources(map[string]*Resource{"a": a2, "b": b1}), false},
		{"one missing", NewResources(map[string]*Resource{"a": a1}), false},
		{"other names", NewResources(map[string]*Resource{"a": a1, "c": res(t, "c", "1")}), false},
	} {
		if got := x.SameAs(c.o); got != c.want {
			t.Errorf("%s: SameAs = %v, want %v", c.name, got, c.want)
		}
	}
}
