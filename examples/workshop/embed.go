// Package workshop embeds the sample mesh's YAML, so `palisade up` can run
// the sample from anywhere. The app itself is cmd/workshop-app.
package workshop

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed *.yaml
var files embed.FS

// WriteConfig writes the sample's YAML into dir, replacing what a previous
// run wrote there.
func WriteConfig(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("workshop: %w", err)
	}
	return fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, path), b, 0o644)
	})
}
