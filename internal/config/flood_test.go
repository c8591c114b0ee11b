package config

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStoreSurvivesFlood floods a watched config directory with broken
// YAML, binary files, huge files, a FIFO and a good file turned bad:
// each is refused with its file named, the last good config stays in
// force, and what the store holds does not grow with what was thrown at
// it.
func TestStoreSurvivesFlood(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), ns("a"))
	writeFile(t, filepath.Join(dir, "b.yaml"), ns("b"))
	logs := &syncBuffer{}
	s := NewStore(dir, slog.New(slog.NewTextHandler(logs, nil)))
	ch, stop := s.Subscribe()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx) //nolint:errcheck
	next(t, ch, func(s *Snapshot) bool { return keys(s) == "Namespace a,Namespace b" })
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var flood []string
	add := func(name string, write func(path string) error) {
		p := filepath.Join(dir, name)
		if err := write(p); err != nil {
			t.Fatal(err)
		}
		flood = append(flood, name)
	}
	for i := range 50 {
		add(fmt.Sprintf("broken-%02d.yaml", i), func(p string) error {
			return os.WriteFile(p, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: [unclosed\n"), 0o600)
		})
	}
	for i := range 5 {
		add(fmt.Sprintf("binary-%d.yaml", i), func(p string) error {
			b := make([]byte, 64<<10)
			rand.Read(b) //nolint:errcheck
			return os.WriteFile(p, b, 0o600)
		})
	}
	for i := range 3 {
		// 1 GiB each, sparse: costly only to whoever reads it whole.
		add(fmt.Sprintf("huge-%d.yaml", i), func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(1 << 30)
		})
	}
	add("many-docs.yaml", func(p string) error {
		return os.WriteFile(p, []byte(strings.Repeat("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n", 5000)), 0o600)
	})
	add("fifo.yaml", func(p string) error { return syscall.Mkfifo(p, 0o600) })
	// A good file turned bad keeps its last good version.
	writeFile(t, filepath.Join(dir, "b.yaml"), "\x00\xff not yaml")
	// A good file added among the flood is taken.
	writeFile(t, filepath.Join(dir, "c.yaml"), ns("c"))

	t0 := time.Now()
	snap := nextWithin(t, ch, 30*time.Second, func(s *Snapshot) bool { return strings.Contains(keys(s), "Namespace c") })
	t.Logf("the flood was read in %v", time.Since(t0).Round(time.Millisecond))
	if keys(snap) != "Namespace a,Namespace b,Namespace c" {
		t.Fatalf("after the flood: %s, want the last good a and b kept and c added", keys(snap))
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, name := range append(flood, "b.yaml") {
		for !strings.Contains(logs.String(), name) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(logs.String(), filepath.Join(dir, name)) {
			t.Errorf("no refusal naming %s in the log", name)
		}
	}
	if l := logs.String(); !strings.Contains(l, "more than the 4 MiB a config file may hold") || !strings.Contains(l, "not a regular file") {
		t.Errorf("the log does not say why the huge files and the FIFO were refused")
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d files thrown in (3 GiB of them); heap in use %+d KiB after, %d log lines", len(flood)+1, grew>>10, strings.Count(logs.String(), "\n"))
	if grew > 64<<20 {
		t.Errorf("the store's heap grew by %d MiB from refused files", grew>>20)
	}
	if st := s.Current(); keys(st) != "Namespace a,Namespace b,Namespace c" {
		t.Errorf("current snapshot %s", keys(st))
	}
}

// nextWithin is next with a deadline of its own.
func nextWithin(t *testing.T, ch <-chan *Snapshot, d time.Duration, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.After(d)
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
