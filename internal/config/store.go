package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Debounce is how long the store waits after the last file event before
// it rereads the directory, so that an editor's burst of writes makes one
// snapshot.
const Debounce = 150 * time.Millisecond

// Store watches a directory of YAML and keeps the current Snapshot. A file
// that fails to decode or validate is logged with all its errors and the
// last good version of that file's resources stays in force; so does the
// last good mesh config. Every change publishes a new snapshot with a
// higher version.
type Store struct {
	dir string
	log *slog.Logger

	snaps *Snapshots

	// Owned by the goroutine running Run.
	good     map[string]fileState // last good content per file
	bad      map[string][32]byte  // the SHA-256 of each file's refused content
	mesh     *meshv1alpha1.MeshConfig
	meshFile string
	meshData []byte
}

type fileState struct {
	data      []byte
	resources []*Resource
}

// NewStore returns a store for dir. Current returns an empty snapshot
// (version 0, default mesh) until Run has read the directory.
func NewStore(dir string, log *slog.Logger) *Store {
	s := &Store{dir: dir, log: log, snaps: NewSnapshots(), good: map[string]fileState{}, bad: map[string][32]byte{}}
	return s
}

// Current returns the latest snapshot. Never nil; never modify it.
func (s *Store) Current() *Snapshot { return s.snaps.Current() }

// Subscribe returns a channel of each new snapshot, latest wins (see
// Snapshots.Subscribe). Call the returned function to stop.
func (s *Store) Subscribe() (<-chan *Snapshot, func()) { return s.snaps.Subscribe() }

func (s *Store) publish(snap *Snapshot) { s.snaps.Publish(snap) }

// Run reads the directory, publishes the first snapshot, then watches for
// changes until ctx is done. It returns nil when ctx ends, or an error if
// the directory cannot be watched.
func (s *Store) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config: watch %s: %w", s.dir, err)
	}
	defer w.Close()
	if err := s.watchTree(w); err != nil {
		return err
	}
	s.reload()
	timer := time.NewTimer(Debounce)
	if !timer.Stop() {
		<-timer.C
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("config: watch: event channel closed")
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					if err := s.watchTree(w); err != nil {
						s.log.Warn("config: watch new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			timer.Reset(Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("config: watch: error channel closed")
			}
			s.log.Warn("config: watch", "err", err)
			timer.Reset(Debounce)
		case <-timer.C:
			s.reload()
		}
	}
}

// watchTree adds dir and every directory below it to w.
func (s *Store) watchTree(w *fsnotify.Watcher) error {
	return filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("config: watch %s: %w", path, err)
		}
		if !d.IsDir() {
			return nil
		}
		if path != s.dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("config: watch %s: %w", path, err)
		}
		return nil
	})
}

// reload rereads every file, keeps the last good version of each file
// that fails, and publishes a snapshot when anything changed.
func (s *Store) reload() {
	files, err := ListFiles(s.dir)
	if err != nil {
		s.log.Error("config: list files", "dir", s.dir, "err", err)
		return
	}
	changed := s.Current().Version == 0
	present := map[string]bool{}
	var candidates []string
	for _, f := range files {
		data, err := ReadFile(f)
		if err != nil {
			// Unreadable now: its last good version, if any, stays.
			s.log.Error("config: unreadable file, keeping its last good version", "file", f, "err", err)
			present[f] = true
			if _, ok := s.good[f]; ok {
				candidates = append(candidates, f)
			}
			continue
		}
		if IsMeshFile(f) {
			if s.loadMesh(f, data) {
				changed = true
			}
			present[f] = true
			continue
		}
		present[f] = true
		candidates = append(candidates, f)
		if old, ok := s.good[f]; ok && bytes.Equal(old.data, data) {
			continue
		}
		sum := sha256.Sum256(data)
		if s.bad[f] == sum {
			continue // refused as it is already: not decoded, nor logged, again
		}
		rs, err := Decode(f, data)
		if err != nil {
			s.bad[f] = sum
			s.log.Error("config: invalid file, keeping its last good version", "file", f, "err", truncate(err.Error(), maxLoggedError))
			continue
		}
		delete(s.bad, f)
		s.good[f] = fileState{data: data, resources: rs}
		changed = true
	}
	for f := range s.good {
		if !present[f] {
			delete(s.good, f)
			changed = true
		}
	}
	for f := range s.bad {
		if !present[f] {
			delete(s.bad, f)
		}
	}
	if s.meshFile != "" && !present[s.meshFile] {
		s.mesh, s.meshFile, s.meshData = nil, "", nil
		changed = true
	}
	if !changed {
		return
	}
	sort.Strings(candidates)
	perFile := map[string][]*Resource{}
	for f, st := range s.good {
		perFile[f] = st.resources
	}
	rs, dups := assemble(candidates, perFile, nil)
	for _, e := range dups {
		s.log.Error("config: duplicate resource ignored", "err", e)
	}
	mesh := s.mesh
	if mesh == nil {
		mesh = DefaultMesh()
	}
	snap := &Snapshot{Version: s.Current().Version + 1, Mesh: mesh, MeshFile: s.meshFile, Resources: rs}
	s.publish(snap)
	s.log.Info("config: snapshot", "version", snap.Version, "resources", len(rs))
}

// loadMesh decodes a mesh file; it reports whether the mesh changed.
func (s *Store) loadMesh(f string, data []byte) bool {
	if s.meshFile == f && bytes.Equal(s.meshData, data) {
		return false
	}
	if s.meshFile != "" && s.meshFile != f {
		s.log.Error("config: second mesh config ignored", "file", f, "first", s.meshFile)
		return false
	}
	m, err := DecodeMesh(f, data)
	if err != nil {
		s.log.Error("config: invalid mesh config, keeping the last good one", "file", f, "err", err)
		return false
	}
	s.mesh, s.meshFile, s.meshData = m, f, data
	return true
}

// maxLoggedError bounds the error logged for one refused file: a file of
// thousands of broken documents is one line, not megabytes of them.
const maxLoggedError = 8 << 10

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d more bytes)", s[:n], len(s)-n)
}
