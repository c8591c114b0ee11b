package inject

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"palisade.dev/palisade/internal/config"
)

// TestWorkshopAdmitted: the validating webhook, given each Istio object
// of the workshop's YAML as kubectl would send it (one object, as JSON),
// admits what `palisade analyze` accepts and refuses what it refuses (the
// RequestAuthentication template, whose jwksUri is a placeholder).
func TestWorkshopAdmitted(t *testing.T) {
	files, err := filepath.Glob("../../examples/workshop/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("../../examples/workshop/optional/*.yaml")
	files = append(files, more...)
	w, err := New(testConfig(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	checked, refused := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, fileErr := config.Decode(f, data)
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(doc, []byte("istio.io/")) || len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			raw, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatal(err)
			}
			errs, _ := w.check(raw, "workshop", "")
			checked++
			if (len(errs) == 0) != (fileErr == nil) {
				t.Errorf("%s: webhook says %q, analyze says %v", filepath.Base(f), strings.Join(errs, "; "), fileErr)
			}
			if fileErr != nil {
				refused++
			}
		}
	}
	if checked < 6 || refused != 1 {
		t.Fatalf("%d Istio objects checked, %d refused; want at least 6 and the template", checked, refused)
	}
}
