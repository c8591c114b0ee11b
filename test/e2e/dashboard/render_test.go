package dashboard_test

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"palisade.dev/palisade/internal/dashboard"
	"palisade.dev/palisade/internal/dashboard/simulate"
)

// A simulated mesh of 1,000 workloads, drawn by the same browser: the
// time from navigation to every node on screen is measured and logged
// (reported, not asserted: the machine is shared).
func TestGraphRenderThousandWorkloads(t *testing.T) {
	br := newBrowser(t)
	mesh := simulate.New(1000, 20)
	d := dashboard.New(mesh, dashboard.Options{})
	d.Collector().Add(mesh.Records(time.Now(), 5)...)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()

	for i := range 3 {
		start := time.Now()
		br.run(30*time.Second, chromedp.Navigate(srv.URL+fmt.Sprintf("/dashboard/?run=%d#/graph", i)))
		br.waitFor(30*time.Second, "1,000 nodes drawn", `(() => {
			const n = document.querySelectorAll('#graph-svg .node').length;
			if (n !== 1000) return n + ' nodes';
			const e = document.querySelectorAll('#graph-svg .edge').length;
			if (e < 1900) return e + ' edges';
			// Two versions of a service, called alike, share a box.
			return document.querySelectorAll('#graph-svg .svc-box').length >= 400 ? '' : 'services not grouped';
		})()`)
		took := time.Since(start)
		page, _ := br.eval(`document.body.dataset.graphRenderMs`)
		drawn, _ := br.eval(`document.body.dataset.graphDrawnAt`)
		edges, _ := br.eval(`String(document.querySelectorAll('#graph-svg .edge').length)`)
		t.Logf("run %d: 1,000 workloads, %s edges: drawn %s ms after navigation began (the page's clock; its fetch and render %s ms); %s by the test's clock, polling included",
			i, edges, drawn, page, took.Round(time.Millisecond))
		if i == 0 {
			br.screenshot("graph-1000-workloads")
		}
	}
}
