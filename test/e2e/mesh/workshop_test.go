package mesh_test

import (
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// The sample runs under STRICT mTLS and every hop is mutual TLS.
func TestWorkshopUnderStrictMTLS(t *testing.T) {
	b := meshtest.Build(t)
	m := meshtest.Up(t, b, meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop")))
	for _, w := range m.Status() {
		if w.MTLSMode != "STRICT" || !w.Connected {
			t.Errorf("workload %s/%s: mtls %s connected %v", w.Namespace, w.Name, w.MTLSMode, w.Connected)
		}
	}
	resp, err := m.Client("workshop", "frontend").Get("http://frontend:9000/")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(string(raw), "")
	for _, want := range []string{"Table", "Chair", "ABC.com",
		"productcatalog was called by: spiffe://cluster.local/ns/workshop/sa/frontend-sa",
		"catalogdetail was called by: spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / through the mesh lacks %q:\n%s", want, body)
		}
	}
}
