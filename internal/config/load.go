package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// IsMeshFile reports whether path names a mesh configuration file
// (mesh.yaml or mesh.yml, in any directory).
func IsMeshFile(path string) bool {
	b := filepath.Base(path)
	return b == "mesh.yaml" || b == "mesh.yml"
}

// MaxFileSize is the most a config file may hold, 4 MiB: above the
// 1.5 MiB Kubernetes (etcd) allows an object and the 3 MiB of a request,
// so no resource Kubernetes accepts is refused, and a huge file costs at
// most this much memory to refuse.
const MaxFileSize = 4 << 20

// ReadFile reads one config file: a regular file of at most MaxFileSize
// bytes (a FIFO or a device would block or never end).
func ReadFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config: read: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("config: read %s: not a regular file (%s)", path, info.Mode().Type())
	}
	if info.Size() > MaxFileSize {
		return nil, fmt.Errorf("config: read %s: %d bytes, more than the %d MiB a config file may hold", path, info.Size(), MaxFileSize>>20)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: read: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		// It grew since the Stat.
		return nil, fmt.Errorf("config: read %s: more than the %d MiB a config file may hold", path, MaxFileSize>>20)
	}
	return data, nil
}

func isYAML(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// ListFiles expands paths into the YAML files they name: files as given,
// and the *.yaml and *.yml files directly in each directory (hidden ones
// skipped). Subdirectories are not read, as `kubectl apply -f DIR` does not
// read them without -R: a folder of optional extras can sit beside a mesh's
// config without being applied. The result is sorted and free of repeats.
func ListFiles(paths ...string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("config: load: %w", err)
		}
		if !info.IsDir() {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && d.IsDir() {
				return filepath.SkipDir
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			if !d.IsDir() && isYAML(path) && !seen[path] {
				seen[path] = true
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("config: load: %w", err)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Load reads files and directories (*.yaml and *.yml, see ListFiles) into a
// Snapshot with Version 1. A file named mesh.yaml or mesh.yml is the
// MeshConfig; without one, Istio's defaults apply. Every problem in every
// file is reported; any problem fails the load. The same Kind,
// namespace and name declared twice is an error naming both places.
func Load(paths ...string) (*Snapshot, error) {
	snap, err := LoadAll(paths...)
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// LoadAll is Load for tools that report rather than refuse: it returns a
// snapshot of every resource that decoded and validated cleanly (and the
// mesh config, or the defaults when it is broken) together with every
// problem found. The snapshot is nil only when paths cannot be read.
func LoadAll(paths ...string) (*Snapshot, error) {
	files, err := ListFiles(paths...)
	if err != nil {
		return nil, err
	}
	var (
		errs     []error
		mesh     *meshv1alpha1.MeshConfig
		meshFile string
		perFile  = map[string][]*Resource{}
	)
	for _, f := range files {
		data, err := ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if IsMeshFile(f) {
			if meshFile != "" {
				errs = append(errs, &FieldError{File: f, Line: 1, Kind: KindMeshConfig, Message: "second mesh config; the first is " + meshFile})
				continue
			}
			meshFile = f
			m, err := DecodeMesh(f, data)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			mesh = m
			continue
		}
		rs, err := Decode(f, data)
		if err != nil {
			errs = append(errs, err)
		}
		perFile[f] = rs
	}
	rs, dupErrs := assemble(files, perFile, nil)
	errs = append(errs, dupErrs...)
	if mesh == nil {
		mesh = DefaultMesh()
	}
	return &Snapshot{Version: 1, Mesh: mesh, MeshFile: meshFile, Resources: rs}, errors.Join(errs...)
}

// assemble joins per-file resources in file order, reporting duplicates.
// A resource whose key was already taken is left out; onDup, if not nil,
// is told about each one.
func assemble(files []string, perFile map[string][]*Resource, onDup func(dup, first *Resource)) ([]*Resource, []error) {
	var (
		out   []*Resource
		errs  []error
		byKey = map[Key]*Resource{}
		byIP  = map[netip.Addr]*Resource{} // Workload spec.address
	)
	for _, f := range files {
		for _, r := range perFile[f] {
			if first, ok := byKey[r.Key()]; ok {
				errs = append(errs, duplicateError(r, first))
				if onDup != nil {
					onDup(r, first)
				}
				continue
			}
			if w, ok := r.Spec.(*WorkloadSpec); ok && w.Address != "" {
				// Two workloads at one address: the mesh could not tell
				// which one a captured connection is for.
				if ip, err := netip.ParseAddr(w.Address); err == nil {
					if first, taken := byIP[ip]; taken {
						errs = append(errs, r.fieldError("spec.address", "address %s is already Workload %s/%s's, at %s", ip, first.Meta.Namespace, first.Meta.Name, first.Source))
						continue
					}
					byIP[ip] = r
				}
			}
			byKey[r.Key()] = r
			out = append(out, r)
		}
	}
	SortResources(out)
	return out, errs
}

func duplicateError(dup, first *Resource) error {
	fe := dup.fieldError("metadata.name", "duplicate %s, first declared at %s", dup.Key(), first.Source)
	return fe
}
