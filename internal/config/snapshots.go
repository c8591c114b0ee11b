package config

import (
	"sync"
	"sync/atomic"
)

// Snapshots holds a config source's latest Snapshot and hands each new one
// to its subscribers, latest wins. The file Store and the Kubernetes source
// both publish through one, so every Provider behaves the same to the
// control plane. Make it with NewSnapshots.
type Snapshots struct {
	cur    atomic.Pointer[Snapshot]
	mu     sync.Mutex
	subs   map[int]chan *Snapshot
	nextID int
}

// NewSnapshots starts with an empty snapshot (version 0, the default mesh).
func NewSnapshots() *Snapshots {
	s := &Snapshots{subs: map[int]chan *Snapshot{}}
	s.cur.Store(&Snapshot{Mesh: DefaultMesh()})
	return s
}

// Current returns the latest snapshot. Never nil; never modify it.
func (s *Snapshots) Current() *Snapshot { return s.cur.Load() }

// Subscribe returns a channel that receives each new snapshot, latest
// wins: the channel holds at most one, and a slow reader skips straight
// to the newest. It starts with the current snapshot when one has been
// published (version above 0). Call the returned function to stop; it
// closes the channel.
func (s *Snapshots) Subscribe() (<-chan *Snapshot, func()) {
	ch := make(chan *Snapshot, 1)
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.subs[id] = ch
	if cur := s.cur.Load(); cur.Version > 0 {
		ch <- cur
	}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs, id)
			close(ch)
			s.mu.Unlock()
		})
	}
}

// Publish makes snap the current snapshot and offers it to every
// subscriber, replacing one it has not read yet.
func (s *Snapshots) Publish(snap *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.Store(snap)
	for _, ch := range s.subs {
		select {
		case ch <- snap:
		default:
			select {
			case <-ch:
			default:
			}
			ch <- snap
		}
	}
}
