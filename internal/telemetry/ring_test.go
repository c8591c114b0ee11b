package telemetry

import "testing"

func TestRing(t *testing.T) {
	add := func(r *Ring, n int) {
		for i := 0; i < n; i++ {
			r.Add(&Entry{Path: string(rune('a' + i%26))})
		}
	}
	tests := []struct {
		name        string
		size, added int
		from        uint64
		max         int
		wantPaths   string
		wantNext    uint64
		wantDropped uint64
	}{
		{name: "empty", size: 4, from: 0, wantNext: 1},
		{name: "all from the start", size: 4, added: 3, from: 0, wantPaths: "abc", wantNext: 4},
		{name: "after a cursor", size: 4, added: 3, from: 3, wantPaths: "c", wantNext: 4},
		{name: "caught up", size: 4, added: 3, from: 4, wantNext: 4},
		{name: "oldest overwritten", size: 4, added: 6, from: 0, wantPaths: "cdef", wantNext: 7},
		{name: "reader fell behind", size: 4, added: 6, from: 1, wantPaths: "cdef", wantNext: 7, wantDropped: 2},
		{name: "limited", size: 4, added: 6, from: 4, max: 2, wantPaths: "de", wantNext: 6},
		{name: "cursor from a previous run", size: 4, added: 2, from: 50, wantNext: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing(tc.size)
			add(r, tc.added)
			b := r.Since(tc.from, tc.max)
			var got string
			for _, e := range b.Entries {
				got += e.Path
			}
			if got != tc.wantPaths || b.Next != tc.wantNext || b.Dropped != tc.wantDropped {
				t.Errorf("Since(%d, %d) = %q next %d dropped %d, want %q next %d dropped %d",
					tc.from, tc.max, got, b.Next, b.Dropped, tc.wantPaths, tc.wantNext, tc.wantDropped)
			}
		})
	}
}

// A writer under load loses only the oldest entries: what a reader gets
// is always the newest size entries, in order.
func TestRingKeepsNewest(t *testing.T) {
	r := NewRing(100)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10000; i++ {
			r.Add(&Entry{BytesSent: int64(i)})
		}
		close(done)
	}()
	var cursor uint64
	var last int64 = -1
	read := func() {
		b := r.Since(cursor, 0)
		for _, e := range b.Entries {
			if e.BytesSent <= last {
				t.Fatalf("entry %d after %d: out of order", e.BytesSent, last)
			}
			last = e.BytesSent
		}
		cursor = b.Next
	}
	for {
		select {
		case <-done:
			read()
			if last != 9999 {
				t.Fatalf("last entry read %d, want 9999", last)
			}
			return
		default:
			read()
		}
	}
}

func BenchmarkRingAdd(b *testing.B) {
	r := NewRing(1024)
	e := &Entry{Path: "/products", Method: "GET", SourcePrincipal: "spiffe://cluster.local/ns/a/sa/b"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Add(e)
	}
}

// A ring takes memory as entries come, not all at once.
func TestRingGrowsWithUse(t *testing.T) {
	r := NewRing(1000)
	r.Add(&Entry{})
	r.Add(&Entry{})
	if len(r.buf) != 2 {
		t.Errorf("%d entries held after 2 added", len(r.buf))
	}
	for range 2000 {
		r.Add(&Entry{})
	}
	if len(r.buf) != 1000 {
		t.Errorf("%d entries held, want the size, 1000", len(r.buf))
	}
}
