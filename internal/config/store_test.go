package config

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the store's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func keys(s *Snapshot) string {
	var out []string
	for _, r := range s.Resources {
		out = append(out, r.Key().String())
	}
	return strings.Join(out, ",")
}

// next waits for a snapshot on ch satisfying ok, failing after 3 seconds
// (the store promises a new snapshot within one).
func next(t *testing.T, ch <-chan *Snapshot, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatal("no matching snapshot")
			return nil
		}
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), ns("a"))
	logs := &syncBuffer{}
	s := NewStore(dir, slog.New(slog.NewTextHandler(logs, nil)))
	if s.Current().Version != 0 || s.Current().Mesh == nil {
		t.Fatalf("initial snapshot = %+v", s.Current())
	}
	ch, stop := s.Subscribe()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	first := next(t, ch, func(s *Snapshot) bool { return keys(s) == "Namespace a" })
	versions := []uint64{first.Version}

	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"file added", func() { writeFile(t, filepath.Join(dir, "b.yaml"), ns("b")) }, "Namespace a,Namespace b"},
		{"file changed", func() { writeFile(t, filepath.Join(dir, "a.yaml"), ns("c")) }, "Namespace b,Namespace c"},
		{"file removed", func() { os.Remove(filepath.Join(dir, "b.yaml")) }, "Namespace c"},
		{"mesh added", func() { writeFile(t, filepath.Join(dir, "mesh.yaml"), "trustDomain: example.org\n") }, "Namespace c"},
	}
	for _, st := range steps {
		st.change()
		snap := next(t, ch, func(s *Snapshot) bool {
			return keys(s) == st.want && (st.name != "mesh added" || s.Mesh.GetTrustDomain() == "example.org")
		})
		versions = append(versions, snap.Version)
		if s.Current() != snap && s.Current().Version < snap.Version {
			t.Errorf("%s: Current is behind the published snapshot", st.name)
		}
	}

	// An invalid edit keeps the file's last good resources and logs why.
	writeFile(t, filepath.Join(dir, "a.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: Bad_Name\n")
	writeFile(t, filepath.Join(dir, "d.yaml"), ns("d"))
	snap := next(t, ch, func(s *Snapshot) bool { return strings.Contains(keys(s), "Namespace d") })
	if keys(snap) != "Namespace c,Namespace d" {
		t.Errorf("after invalid edit: %s, want the last good Namespace c kept", keys(snap))
	}
	versions = append(versions, snap.Version)
	if l := logs.String(); !strings.Contains(l, "a.yaml:4: Namespace Bad_Name: metadata.name") {
		t.Errorf("log lacks the file's error:\n%s", l)
	}
	for i := 1; i < len(versions); i++ {
		if versions[i] <= versions[i-1] {
			t.Errorf("versions not increasing: %v", versions)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestSubscribeLatestWins(t *testing.T) {
	s := NewStore(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ch, stop := s.Subscribe()
	for v := uint64(1); v <= 5; v++ {
		s.publish(&Snapshot{Version: v, Mesh: DefaultMesh()})
	}
	if got := <-ch; got.Version != 5 {
		t.Errorf("slow subscriber got version %d, want the latest 5", got.Version)
	}
	stop()
	stop()
	if _, ok := <-ch; ok {
		t.Error("channel open after stop")
	}
	s.publish(&Snapshot{Version: 6, Mesh: DefaultMesh()}) // no panic on a closed subscriber
}
