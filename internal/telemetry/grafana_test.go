package telemetry

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every metric and label the shipped Grafana dashboard queries is one
// the sidecars export.
func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/palisade-istio-standard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(&Entry{Protocol: ProtocolHTTP, Direction: Inbound, ResponseCode: 200})
	m.ObserveTCPOpen(&Entry{Protocol: ProtocolTCP, Direction: Inbound})
	m.ObserveTCPClose(&Entry{Protocol: ProtocolTCP, Direction: Inbound, BytesSent: 1, BytesReceived: 1})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	labels := map[string]bool{"le": true}
	for _, f := range families {
		name := f.GetName()
		series[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			series[name+"_bucket"], series[name+"_sum"], series[name+"_count"] = true, true, true
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = true
			}
		}
	}

	metricRE := regexp.MustCompile(`\bistio_[a-z_]+`)
	byRE := regexp.MustCompile(`by \(([^)]*)\)`)
	matcherRE := regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			if len(metricRE.FindAllString(tg.Expr, -1)) == 0 {
				t.Errorf("panel %q: no Istio metric in %q", p.Title, tg.Expr)
			}
			for _, name := range metricRE.FindAllString(tg.Expr, -1) {
				if !series[name] {
					t.Errorf("panel %q queries %s, which the sidecars do not export", p.Title, name)
				}
			}
			for _, by := range byRE.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(by[1], ",") {
					if l = strings.TrimSpace(l); !labels[l] {
						t.Errorf("panel %q groups by %q, not a label of the metrics", p.Title, l)
					}
				}
			}
			for _, mm := range matcherRE.FindAllStringSubmatch(tg.Expr, -1) {
				if !labels[mm[1]] {
					t.Errorf("panel %q matches on %q, not a label of the metrics", p.Title, mm[1])
				}
			}
		}
	}
	if queries < 10 {
		t.Errorf("%d queries in the dashboard", queries)
	}
}
