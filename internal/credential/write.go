package credential

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write makes dir/name hold m's files (tls.crt, tls.key, ca.crt) at once:
// they go to a new directory, then the symlink dir/name is swapped to it
// with one rename, so a reader sees the old set or the new one. The
// version before the previous one is removed; the previous one stays for a
// reader that opened it just before the swap.
func Write(dir, name string, m Material) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("credential: invalid credential name %q", name)
	}
	ver, err := os.MkdirTemp(dir, "."+name+".")
	if err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	files := map[string][]byte{"tls.crt": m.Cert, "tls.key": m.Key}
	if len(m.CA) > 0 {
		files["ca.crt"] = m.CA
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(ver, f), b, 0o600); err != nil {
			os.RemoveAll(ver)
			return fmt.Errorf("credential: %w", err)
		}
	}
	link := filepath.Join(dir, name)
	prev, _ := os.Readlink(link)
	tmp := link + ".swap"
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ver), tmp); err != nil {
		os.RemoveAll(ver)
		return fmt.Errorf("credential: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		os.RemoveAll(ver)
		return fmt.Errorf("credential: %w", err)
	}
	return prune(dir, name, filepath.Base(ver), prev)
}

// prune removes the versions of name other than cur and prev.
func prune(dir, name, cur, prev string) error {
	old, err := filepath.Glob(filepath.Join(dir, "."+name+".*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range old {
		if b := filepath.Base(o); b != cur && b != filepath.Base(prev) {
			errs = append(errs, os.RemoveAll(o))
		}
	}
	return errors.Join(errs...)
}

// Remove deletes credential name from dir.
func Remove(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("credential: %w", err)
	}
	return prune(dir, name, "", "")
}
