package proxy

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"palisade.dev/palisade/internal/xds"
)

// A push that does not compile is refused (NACK) and the config in force,
// compiled and raw, stays as it was.
func TestStoreKeepsLastGoodOnNack(t *testing.T) {
	const typ = "type.googleapis.com/google.protobuf.StringValue"
	compile := func(r Resources) (*Compiled, error) {
		for _, m := range r[typ] {
			if m.(*wrapperspb.StringValue).GetValue() == "bad" {
				return nil, errors.New("does not compile")
			}
		}
		return &Compiled{}, nil
	}
	s := NewStore(slog.New(slog.NewTextHandler(io.Discard, nil)), compile)
	res := func(name, v string) *xds.Resource {
		r, err := xds.NewResource(name, wrapperspb.String(v))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if err := s.Apply(typ, []*xds.Resource{res("a", "good"), res("b", "good")}, nil); err != nil {
		t.Fatal(err)
	}
	good := s.Current()
	if good == nil || good.Version != 1 {
		t.Fatalf("after the first push: %+v", good)
	}
	for _, c := range []struct {
		name    string
		ups     []*xds.Resource
		removed []string
	}{
		{"an upsert that does not compile", []*xds.Resource{res("a", "bad")}, nil},
		{"a new resource that does not compile, with a removal", []*xds.Resource{res("c", "bad")}, []string{"b"}},
	} {
		if err := s.Apply(typ, c.ups, c.removed); err == nil {
			t.Fatalf("%s: accepted", c.name)
		}
		if s.Current() != good {
			t.Errorf("%s: the config in force changed", c.name)
		}
		if got := s.Raw().Names(typ); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Errorf("%s: raw resources now %v, want [a b]", c.name, got)
		}
		if v := s.Raw()[typ]["a"].(*wrapperspb.StringValue).GetValue(); v != "good" {
			t.Errorf("%s: a is now %q", c.name, v)
		}
	}
	if err := s.Apply(typ, nil, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if c := s.Current(); c == good || c.Version != 2 {
		t.Errorf("a good push after the refused ones: version %d, want 2", c.Version)
	}
}
