package dashboard

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The UI is whole in the binary: nothing it loads comes from elsewhere.
func TestAssetsAreSelfContained(t *testing.T) {
	absolute := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(assets, "web", func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := assets.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range absolute.FindAllString(string(b), -1) {
			if m == "http://www.w3.org" { // the SVG namespace, a name, not a fetch
				continue
			}
			t.Errorf("%s refers to %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestServesTheUI(t *testing.T) {
	h := New(workshopMesh(), Options{}).Handler()
	for path, want := range map[string]string{"/dashboard/": "text/html", "/dashboard/app.js": "javascript", "/dashboard/style.css": "text/css"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, w.Code, w.Header().Get("Content-Type"), want)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
	if w.Code != http.StatusFound {
		t.Errorf("GET /dashboard: %d, want a redirect to /dashboard/", w.Code)
	}
}
