package telemetry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Buckets are Envoy's default histogram buckets, which Istio's standard
// histograms (duration in milliseconds, sizes in bytes) use.
var Buckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Label names, as in Istio's standard metrics.
var (
	tcpLabelNames = []string{
		"reporter",
		"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
		"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
		"destination_service", "destination_service_name", "destination_service_namespace",
		"request_protocol", "response_flags", "connection_security_policy",
		"source_canonical_service", "source_canonical_revision", "destination_canonical_service", "destination_canonical_revision",
		"source_cluster", "destination_cluster",
	}
	httpLabelNames = append(append([]string{}, tcpLabelNames...), "response_code", "grpc_response_status")
)

// labels is one label set; TCP series leave the last two empty.
type labels struct {
	reporter                                                    string
	srcWorkload, srcNamespace, srcPrincipal, srcApp, srcVersion string
	dstWorkload, dstNamespace, dstPrincipal, dstApp, dstVersion string
	dstService, dstServiceName, dstServiceNamespace             string
	protocol, flags, securityPolicy                             string
	srcCanonical, srcRevision, dstCanonical, dstRevision        string
	srcCluster, dstCluster                                      string
	responseCode, grpcStatus                                    string
}

func (l *labels) tcpValues() []string {
	return []string{
		l.reporter,
		l.srcWorkload, l.srcNamespace, l.srcPrincipal, l.srcApp, l.srcVersion,
		l.dstWorkload, l.dstNamespace, l.dstPrincipal, l.dstApp, l.dstVersion,
		l.dstService, l.dstServiceName, l.dstServiceNamespace,
		l.protocol, l.flags, l.securityPolicy,
		l.srcCanonical, l.srcRevision, l.dstCanonical, l.dstRevision,
		l.srcCluster, l.dstCluster,
	}
}

func (l *labels) httpValues() []string {
	return append(l.tcpValues(), l.responseCode, l.grpcStatus)
}

const unknown = "unknown"

// DefaultCluster is the cluster a workload reports in source_cluster and
// destination_cluster: Istio's default cluster ID.
const DefaultCluster = "Kubernetes"

// canonical works out a workload's canonical service, canonical revision
// and cluster labels as Istio does, "unknown" for a workload not known.
func canonical(workload, app, version, canon, rev, cluster string) (string, string, string) {
	if workload == "" && app == "" && canon == "" {
		return unknown, unknown, orUnknown(cluster)
	}
	svc := firstOf(canon, app, workload)
	rv := firstOf(rev, version, "latest")
	return svc, rv, firstOf(cluster, DefaultCluster)
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// labelsOf computes e's labels as Istio's stats filter does: "unknown" for
// what is not known, response_flags "-" when there are none, and
// connection_security_policy mutual_tls or none when the destination
// reports, unknown when the source does.
func labelsOf(e *Entry, withResponse bool) labels {
	l := labels{
		reporter:     e.reporter(),
		srcWorkload:  orUnknown(e.SourceWorkload),
		srcNamespace: orUnknown(e.SourceNamespace),
		srcPrincipal: orUnknown(e.SourcePrincipal),
		srcApp:       orUnknown(e.SourceApp),
		srcVersion:   orUnknown(e.SourceVersion),
		dstWorkload:  orUnknown(e.DestinationWorkload),
		dstNamespace: orUnknown(e.DestinationNamespace),
		dstPrincipal: orUnknown(e.DestinationPrincipal),
		dstApp:       orUnknown(e.DestinationApp),
		dstVersion:   orUnknown(e.DestinationVersion),
		dstService:   orUnknown(e.DestinationService),
		protocol:     orUnknown(e.Protocol),
		flags:        e.ResponseFlags,
	}
	name := e.DestinationServiceName
	if name == "" && e.DestinationService != "" {
		name, _, _ = strings.Cut(e.DestinationService, ".")
	}
	l.dstServiceName = orUnknown(name)
	ns := e.DestinationServiceNamespace
	if ns == "" {
		ns = e.DestinationNamespace
	}
	l.dstServiceNamespace = orUnknown(ns)
	l.srcCanonical, l.srcRevision, l.srcCluster = canonical(e.SourceWorkload, e.SourceApp, e.SourceVersion, e.SourceCanonicalService, e.SourceCanonicalRevision, e.SourceCluster)
	l.dstCanonical, l.dstRevision, l.dstCluster = canonical(e.DestinationWorkload, e.DestinationApp, e.DestinationVersion, e.DestinationCanonicalService, e.DestinationCanonicalRevision, e.DestinationCluster)
	if l.flags == "" {
		l.flags = "-"
	}
	switch {
	case l.reporter == ReporterSource:
		l.securityPolicy = unknown
	case e.MTLS:
		l.securityPolicy = "mutual_tls"
	default:
		l.securityPolicy = "none"
	}
	if withResponse {
		l.responseCode = codeString(e.ResponseCode)
		l.grpcStatus = e.GRPCStatus
	}
	return l
}

// codes holds the label values of the usual status codes, so observing a
// request allocates nothing.
var codes = func() []string {
	s := make([]string, 600)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func codeString(c int) string {
	if c >= 0 && c < len(codes) {
		return codes[c]
	}
	return strconv.Itoa(c)
}

// Metrics counts entries in Istio's standard metrics. It is safe for
// concurrent use.
type Metrics struct {
	requests                              *prometheus.CounterVec
	duration, requestBytes, responseBytes *prometheus.HistogramVec
	tcpOpened, tcpClosed                  *prometheus.CounterVec
	tcpSent, tcpReceived                  *prometheus.CounterVec

	// Resolved series per label set, so the hot path skips the vectors'
	// label hashing and slice building and allocates nothing.
	mu   sync.RWMutex
	http map[labels]*httpSeries
	tcp  map[labels]*tcpSeries
}

type httpSeries struct {
	requests                              prometheus.Counter
	duration, requestBytes, responseBytes prometheus.Observer
}

type tcpSeries struct {
	opened, closed, sent, received prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	counter := func(name, help string, ls []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, ls)
	}
	histogram := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: Buckets}, httpLabelNames)
	}
	m := &Metrics{
		requests:      counter("istio_requests_total", "Requests handled by the proxy.", httpLabelNames),
		duration:      histogram("istio_request_duration_milliseconds", "Request duration in milliseconds."),
		requestBytes:  histogram("istio_request_bytes", "Request sizes in bytes."),
		responseBytes: histogram("istio_response_bytes", "Response sizes in bytes."),
		tcpOpened:     counter("istio_tcp_connections_opened_total", "TCP connections opened.", tcpLabelNames),
		tcpClosed:     counter("istio_tcp_connections_closed_total", "TCP connections closed.", tcpLabelNames),
		tcpSent:       counter("istio_tcp_sent_bytes_total", "Bytes sent to the downstream on TCP connections.", tcpLabelNames),
		tcpReceived:   counter("istio_tcp_received_bytes_total", "Bytes received from the downstream on TCP connections.", tcpLabelNames),
		http:          map[labels]*httpSeries{},
		tcp:           map[labels]*tcpSeries{},
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.requests, m.duration, m.requestBytes, m.responseBytes,
		m.tcpOpened, m.tcpClosed, m.tcpSent, m.tcpReceived,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: register metrics: %w", err)
	}
	return m, nil
}

// Observe counts a finished HTTP or gRPC request: istio_requests_total,
// istio_request_duration_milliseconds, istio_request_bytes and
// istio_response_bytes. A TCP entry is counted as a whole connection
// (ObserveTCPOpen then ObserveTCPClose), for callers that report a
// connection only when it ends.
func (m *Metrics) Observe(e *Entry) {
	if e.Protocol == ProtocolTCP {
		m.ObserveTCPOpen(e)
		m.ObserveTCPClose(e)
		return
	}
	s := m.httpSeries(e)
	s.requests.Inc()
	s.duration.Observe(float64(e.Duration) / 1e6)
	s.requestBytes.Observe(float64(e.BytesReceived))
	s.responseBytes.Observe(float64(e.BytesSent))
}

// ObserveTCPOpen counts an opened TCP connection
// (istio_tcp_connections_opened_total). e needs only the connection's
// identities; its byte counts are ignored.
func (m *Metrics) ObserveTCPOpen(e *Entry) {
	m.tcpSeries(e).opened.Inc()
}

// ObserveTCPBytes adds e's BytesSent and BytesReceived, the bytes since the
// last report, to istio_tcp_sent_bytes_total and
// istio_tcp_received_bytes_total, for long-lived connections reported
// periodically.
func (m *Metrics) ObserveTCPBytes(e *Entry) {
	s := m.tcpSeries(e)
	if e.BytesSent > 0 {
		s.sent.Add(float64(e.BytesSent))
	}
	if e.BytesReceived > 0 {
		s.received.Add(float64(e.BytesReceived))
	}
}

// ObserveTCPClose counts a closed TCP connection
// (istio_tcp_connections_closed_total) and adds its bytes not yet reported
// with ObserveTCPBytes.
func (m *Metrics) ObserveTCPClose(e *Entry) {
	m.ObserveTCPBytes(e)
	m.tcpSeries(e).closed.Inc()
}

func (m *Metrics) httpSeries(e *Entry) *httpSeries {
	l := labelsOf(e, true)
	m.mu.RLock()
	s, ok := m.http[l]
	m.mu.RUnlock()
	if ok {
		return s
	}
	vs := l.httpValues()
	s = &httpSeries{
		requests:      m.requests.WithLabelValues(vs...),
		duration:      m.duration.WithLabelValues(vs...),
		requestBytes:  m.requestBytes.WithLabelValues(vs...),
		responseBytes: m.responseBytes.WithLabelValues(vs...),
	}
	m.mu.Lock()
	m.http[l] = s // a racing writer stored the same children
	m.mu.Unlock()
	return s
}

func (m *Metrics) tcpSeries(e *Entry) *tcpSeries {
	l := labelsOf(e, false)
	if l.protocol == unknown {
		l.protocol = ProtocolTCP
	}
	m.mu.RLock()
	s, ok := m.tcp[l]
	m.mu.RUnlock()
	if ok {
		return s
	}
	vs := l.tcpValues()
	s = &tcpSeries{
		opened:   m.tcpOpened.WithLabelValues(vs...),
		closed:   m.tcpClosed.WithLabelValues(vs...),
		sent:     m.tcpSent.WithLabelValues(vs...),
		received: m.tcpReceived.WithLabelValues(vs...),
	}
	m.mu.Lock()
	m.tcp[l] = s
	m.mu.Unlock()
	return s
}
