package proxy

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"palisade.dev/palisade/internal/xds"
)

// Store holds the raw resources pushed to this proxy and the config
// compiled from them. It implements xds.Handler: a push that does not
// compile is refused (NACK) and the last good config stays in force.
type Store struct {
	log     *slog.Logger
	compile func(Resources) (*Compiled, error)

	mu      sync.Mutex
	raw     Resources
	current atomic.Pointer[Compiled]
	version atomic.Uint64
	ready   chan struct{}
	seen    map[string]bool // types received at least once
	once    sync.Once
	notify  []func(*Compiled)
}

// Resources is the raw pushed state: type URL → name → message.
type Resources map[string]map[string]proto.Message

// NewStore returns a store that compiles with compile.
func NewStore(log *slog.Logger, compile func(Resources) (*Compiled, error)) *Store {
	return &Store{log: log, compile: compile, raw: Resources{}, ready: make(chan struct{}), seen: map[string]bool{}}
}

// Current returns the config in force, or nil before the first push.
func (s *Store) Current() *Compiled { return s.current.Load() }

// Ready is closed once every resource type has arrived at least once
// and the config in force has a trust bundle.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// OnChange registers f to be called with each new config.
func (s *Store) OnChange(f func(*Compiled)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify = append(s.notify, f)
}

// Apply implements xds.Handler.
func (s *Store) Apply(typeURL string, upserts []*xds.Resource, removed []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(Resources, len(s.raw))
	for t, m := range s.raw {
		next[t] = m
	}
	m := make(map[string]proto.Message, len(s.raw[typeURL])+len(upserts))
	for k, v := range s.raw[typeURL] {
		m[k] = v
	}
	for _, n := range removed {
		delete(m, n)
	}
	for _, r := range upserts {
		msg, err := r.Any.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("proxy: decode %s %s: %w", typeURL, r.Name, err)
		}
		m[r.Name] = msg
	}
	next[typeURL] = m
	c, err := s.compile(next)
	if err != nil {
		return err
	}
	c.Version = s.version.Add(1)
	s.raw = next
	s.current.Store(c)
	s.seen[typeURL] = true
	if c.Bundle != nil && len(s.seen) >= len(xds.AllTypes) {
		s.once.Do(func() { close(s.ready) })
	}
	for _, f := range s.notify {
		f(c)
	}
	return nil
}

// Raw returns the resources in force. Callers must not modify them.
func (s *Store) Raw() Resources {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw
}

// Names returns the names of one type's resources, sorted.
func (r Resources) Names(typeURL string) []string {
	out := make([]string, 0, len(r[typeURL]))
	for n := range r[typeURL] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
