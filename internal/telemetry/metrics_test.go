package telemetry

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// series finds the one series of metric name whose labels include want,
// failing unless there is exactly one.
func series(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(found))
	}
	return found[0]
}

func newTestMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestObserveHTTP(t *testing.T) {
	m, reg := newTestMetrics(t)
	in := httpEntry()
	m.Observe(in)
	m.Observe(in)
	denied := httpEntry()
	denied.ResponseCode, denied.Duration, denied.BytesSent = 403, time.Millisecond, 19
	m.Observe(denied)
	out := httpEntry()
	out.Direction, out.MTLS = Outbound, true
	out.DestinationServiceName, out.DestinationServiceNamespace = "pc", "shop"
	m.Observe(out)
	plain := httpEntry()
	plain.MTLS, plain.SourcePrincipal, plain.SourceWorkload, plain.SourceNamespace = false, "", "", ""
	plain.SourceApp, plain.SourceVersion, plain.ResponseFlags = "", "", "NR"
	m.Observe(plain)
	grpc := httpEntry()
	grpc.Protocol, grpc.HTTPVersion, grpc.GRPCStatus = ProtocolGRPC, "HTTP/2", "7"
	m.Observe(grpc)

	full := map[string]string{
		"reporter": "destination", "source_workload": "frontend", "source_workload_namespace": "workshop",
		"source_principal": "spiffe://cluster.local/ns/workshop/sa/frontend-sa",
		"source_app":       "frontend", "source_version": "v1",
		"destination_workload": "productcatalog", "destination_workload_namespace": "workshop",
		"destination_principal": "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa",
		"destination_app":       "productcatalog", "destination_version": "v1",
		"destination_service":           "productcatalog.workshop.svc.cluster.local",
		"destination_service_name":      "productcatalog",
		"destination_service_namespace": "workshop",
		"request_protocol":              "http", "response_code": "200", "grpc_response_status": "",
		"response_flags": "-", "connection_security_policy": "mutual_tls",
		"source_canonical_service": "frontend", "source_canonical_revision": "v1",
		"destination_canonical_service": "productcatalog", "destination_canonical_revision": "v1",
		"source_cluster": "Kubernetes", "destination_cluster": "Kubernetes",
	}
	m1 := series(t, reg, "istio_requests_total", full)
	if got := m1.GetCounter().GetValue(); got != 2 {
		t.Errorf("requests = %v, want 2", got)
	}
	if n := len(m1.GetLabel()); n != len(full) {
		t.Errorf("%d labels, want %d", n, len(full))
	}

	tests := []struct {
		name   string
		labels map[string]string
	}{
		{name: "denied", labels: map[string]string{"reporter": "destination", "response_code": "403"}},
		{name: "outbound reports as source with unknown policy", labels: map[string]string{
			"reporter": "source", "connection_security_policy": "unknown",
			"destination_service_name": "pc", "destination_service_namespace": "shop"}},
		{name: "plaintext", labels: map[string]string{
			"connection_security_policy": "none", "source_principal": "unknown", "source_workload": "unknown",
			"source_workload_namespace": "unknown", "source_app": "unknown", "source_version": "unknown",
			"response_flags": "NR"}},
		{name: "grpc", labels: map[string]string{"request_protocol": "grpc", "grpc_response_status": "7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := series(t, reg, "istio_requests_total", tt.labels).GetCounter().GetValue(); got != 1 {
				t.Errorf("requests = %v, want 1", got)
			}
		})
	}

	t.Run("histograms", func(t *testing.T) {
		d := series(t, reg, "istio_request_duration_milliseconds", full).GetHistogram()
		if d.GetSampleCount() != 2 || d.GetSampleSum() != 25.4 {
			t.Errorf("duration count %d sum %v, want 2 and 25.4", d.GetSampleCount(), d.GetSampleSum())
		}
		bs := d.GetBucket()
		if len(bs) != len(Buckets) || bs[0].GetUpperBound() != 0.5 || bs[len(bs)-1].GetUpperBound() != 3600000 {
			t.Fatalf("buckets = %v, want Envoy's defaults", bs)
		}
		for _, b := range bs { // 12.7 ms falls in le=25 and above
			want := uint64(0)
			if b.GetUpperBound() >= 25 {
				want = 2
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("le=%v count %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
		if s := series(t, reg, "istio_request_bytes", full).GetHistogram().GetSampleSum(); s != 240 {
			t.Errorf("request bytes sum = %v, want 240", s)
		}
		denied := map[string]string{"response_code": "403"}
		if s := series(t, reg, "istio_response_bytes", denied).GetHistogram().GetSampleSum(); s != 19 {
			t.Errorf("response bytes sum = %v, want 19", s)
		}
	})

	if n := testutil.CollectAndCount(m.requests); n != 5 {
		t.Errorf("%d request series, want 5", n)
	}
	if n := testutil.CollectAndCount(m.tcpOpened); n != 0 {
		t.Errorf("HTTP entries made %d TCP series", n)
	}
}

func TestObserveTCP(t *testing.T) {
	m, reg := newTestMetrics(t)
	conn := &Entry{
		Protocol: ProtocolTCP, Direction: Inbound, MTLS: true,
		SourcePrincipal: "spiffe://cluster.local/ns/workshop/sa/frontend-sa", SourceWorkload: "frontend",
		DestinationWorkload: "db", DestinationNamespace: "workshop", DestinationService: "db.workshop.svc.cluster.local",
	}
	want := map[string]string{
		"reporter": "destination", "request_protocol": "tcp", "connection_security_policy": "mutual_tls",
		"source_principal": "spiffe://cluster.local/ns/workshop/sa/frontend-sa", "destination_service_name": "db",
		"response_flags": "-",
	}
	value := func(name string) float64 {
		t.Helper()
		return series(t, reg, name, want).GetCounter().GetValue()
	}

	m.ObserveTCPOpen(conn)
	if got := value("istio_tcp_connections_opened_total"); got != 1 {
		t.Errorf("opened = %v, want 1", got)
	}
	if got := value("istio_tcp_connections_closed_total"); got != 0 {
		t.Errorf("closed = %v before close", got)
	}

	conn.BytesSent, conn.BytesReceived = 100, 40 // periodic report
	m.ObserveTCPBytes(conn)
	conn.BytesSent, conn.BytesReceived = 5, 0 // the rest, at close
	m.ObserveTCPClose(conn)

	for _, tt := range []struct {
		name string
		want float64
	}{
		{"istio_tcp_connections_opened_total", 1},
		{"istio_tcp_connections_closed_total", 1},
		{"istio_tcp_sent_bytes_total", 105},
		{"istio_tcp_received_bytes_total", 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := value(tt.name); got != tt.want {
				t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
			}
		})
	}

	t.Run("tcp series carry no response labels", func(t *testing.T) {
		for _, lp := range series(t, reg, "istio_tcp_connections_opened_total", want).GetLabel() {
			if lp.GetName() == "response_code" || lp.GetName() == "grpc_response_status" {
				t.Errorf("label %s on a TCP metric", lp.GetName())
			}
		}
	})

	t.Run("observe counts a whole connection", func(t *testing.T) {
		whole := *conn
		whole.Direction, whole.BytesSent, whole.BytesReceived = Outbound, 7, 3
		m.Observe(&whole)
		src := map[string]string{"reporter": "source", "connection_security_policy": "unknown"}
		for name, wantV := range map[string]float64{
			"istio_tcp_connections_opened_total": 1, "istio_tcp_connections_closed_total": 1,
			"istio_tcp_sent_bytes_total": 7, "istio_tcp_received_bytes_total": 3,
		} {
			if got := series(t, reg, name, src).GetCounter().GetValue(); got != wantV {
				t.Errorf("%s = %v, want %v", name, got, wantV)
			}
		}
		if n := testutil.CollectAndCount(m.requests); n != 0 {
			t.Errorf("TCP entry made %d request series", n)
		}
	})
}

func TestNewMetricsRegisterError(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	_, err := NewMetrics(reg)
	var already prometheus.AlreadyRegisteredError
	if !errors.As(err, &already) || !strings.HasPrefix(err.Error(), "telemetry: register metrics: ") {
		t.Errorf("second NewMetrics = %v, want a wrapped AlreadyRegisteredError", err)
	}
}

func TestExposition(t *testing.T) {
	m, reg := newTestMetrics(t)
	m.Observe(httpEntry())
	const want = `
# HELP istio_requests_total Requests handled by the proxy.
# TYPE istio_requests_total counter
istio_requests_total{connection_security_policy="mutual_tls",destination_app="productcatalog",destination_canonical_revision="v1",destination_canonical_service="productcatalog",destination_cluster="Kubernetes",destination_principal="spiffe://cluster.local/ns/workshop/sa/productcatalog-sa",destination_service="productcatalog.workshop.svc.cluster.local",destination_service_name="productcatalog",destination_service_namespace="workshop",destination_version="v1",destination_workload="productcatalog",destination_workload_namespace="workshop",grpc_response_status="",reporter="destination",request_protocol="http",response_code="200",response_flags="-",source_app="frontend",source_canonical_revision="v1",source_canonical_service="frontend",source_cluster="Kubernetes",source_principal="spiffe://cluster.local/ns/workshop/sa/frontend-sa",source_version="v1",source_workload="frontend",source_workload_namespace="workshop"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "istio_requests_total"); err != nil {
		t.Error(err)
	}
}

// Istio's canonical service and revision: the canonical-name label, else
// app, else the workload; the revision label, else version, else latest.
func TestCanonicalLabels(t *testing.T) {
	for _, c := range []struct {
		name                                   string
		workload, app, version, canon, rev, cl string
		svc, revOut, cluster                   string
	}{
		{"unknown workload", "", "", "", "", "", "", "unknown", "unknown", "unknown"},
		{"app and version", "productcatalog-v1", "productcatalog", "v1", "", "", "", "productcatalog", "v1", "Kubernetes"},
		{"workload only", "catalogdetail", "", "", "", "", "", "catalogdetail", "latest", "Kubernetes"},
		{"canonical labels win", "w", "app", "v1", "shop-api", "r7", "east", "shop-api", "r7", "east"},
	} {
		svc, rev, cl := canonical(c.workload, c.app, c.version, c.canon, c.rev, c.cl)
		if svc != c.svc || rev != c.revOut || cl != c.cluster {
			t.Errorf("%s: %s %s %s, want %s %s %s", c.name, svc, rev, cl, c.svc, c.revOut, c.cluster)
		}
	}
}
