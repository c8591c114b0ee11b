package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"palisade.dev/palisade/internal/dashboard"
	"palisade.dev/palisade/internal/dashboard/simulate"
)

// The graph of a simulated mesh of 1,000 workloads (980 edges, 4,900
// records), as the page asks for it.
func BenchmarkGraphThousandWorkloads(b *testing.B) {
	mesh := simulate.New(1000, 20)
	d := dashboard.New(mesh, dashboard.Options{})
	d.Collector().Add(mesh.Records(time.Now(), 5)...)
	h := d.Handler()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/dashboard/graph?window=5m", nil))
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
