package telemetry

import "sync"

// Ring keeps the last entries a sidecar reported, for the control plane
// to collect: a fixed number of them, the oldest overwritten first. Each
// entry gets a sequence number, so a reader that asks for what came after
// the last one it saw learns how many it missed when it fell behind.
type Ring struct {
	mu   sync.Mutex
	size uint64
	buf  []Entry // grows to size; entry s is at (s-1) % size
	next uint64  // sequence number of the next entry added; the first is 1
}

// NewRing returns a ring holding up to size entries (at least 1). Its
// memory grows with use, up to size entries.
func NewRing(size int) *Ring {
	if size < 1 {
		size = 1
	}
	return &Ring{size: uint64(size), next: 1}
}

// Add stores a copy of e.
func (r *Ring) Add(e *Entry) {
	r.mu.Lock()
	if i := (r.next - 1) % r.size; i == uint64(len(r.buf)) {
		r.buf = append(r.buf, *e)
	} else {
		r.buf[i] = *e
	}
	r.next++
	r.mu.Unlock()
}

// oldest is the sequence number of the oldest entry kept.
func (r *Ring) oldest() uint64 {
	if r.next-1 > r.size {
		return r.next - r.size
	}
	return 1
}

// Batch is what Since returns: entries in order, the sequence number to
// ask for next, and how many entries after the one asked for were
// already overwritten.
type Batch struct {
	Entries []Entry `json:"entries"`
	Next    uint64  `json:"next"`
	Dropped uint64  `json:"dropped"`
}

// Since returns the entries from sequence number from on (0 or 1: from
// the oldest kept), at most max of them (0: no limit).
func (r *Ring) Since(from uint64, max int) Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.oldest()
	var b Batch
	if from < oldest {
		if from > 0 {
			b.Dropped = oldest - from
		}
		from = oldest
	}
	if from > r.next {
		from = r.next // a reader from before a restart starts over
	}
	end := r.next
	if max > 0 && end-from > uint64(max) {
		end = from + uint64(max)
	}
	b.Entries = make([]Entry, 0, end-from)
	for s := from; s < end; s++ {
		b.Entries = append(b.Entries, r.buf[(s-1)%r.size])
	}
	b.Next = end
	return b
}

// Do calls f with each kept entry, oldest first, without copying them;
// f must not keep e or call back into r.
func (r *Ring) Do(f func(e *Entry)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := r.oldest(); s < r.next; s++ {
		f(&r.buf[(s-1)%r.size])
	}
}
