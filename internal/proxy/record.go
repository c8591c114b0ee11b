package proxy

import "palisade.dev/palisade/internal/telemetry"

// Record is one finished request or connection.
type Record = telemetry.Entry

// Telemetry is where a sidecar reports what it did; either part may be
// nil.
type Telemetry struct {
	AccessLog *telemetry.AccessLog
	Metrics   *telemetry.Metrics
	// Records keeps the last records for the control plane to collect
	// from the admin listener; nil keeps none.
	Records *telemetry.Ring
	Limits  *telemetry.Limits // refusals for a limit exceeded; nil counts none
}

// exceeded counts one refusal for limit.
func (t *Telemetry) exceeded(limit string) {
	if t != nil {
		t.Limits.Exceeded(limit)
	}
}

// Observe reports a finished request or connection.
func (t *Telemetry) Observe(e *telemetry.Entry) {
	if t == nil {
		return
	}
	if t.AccessLog != nil {
		_ = t.AccessLog.Log(e)
	}
	if t.Records != nil {
		t.Records.Add(e)
	}
	if t.Metrics != nil {
		if e.Protocol == telemetry.ProtocolTCP && e.ResponseFlags == "" {
			t.Metrics.ObserveTCPClose(e)
		} else {
			t.Metrics.Observe(e)
		}
	}
}

// observeOpen reports a TCP connection that just opened.
func (t *Telemetry) observeOpen(e *telemetry.Entry) {
	if t != nil && t.Metrics != nil {
		t.Metrics.ObserveTCPOpen(e)
	}
}

// observe reports r with the workload's own app, version and canonical
// labels on its side: destination for inbound, source for outbound.
func (p *Proxy) observe(r *Record) {
	l := &p.labels
	if r.Direction == telemetry.Inbound {
		r.DestinationApp, r.DestinationVersion = l.app, l.version
		r.DestinationCanonicalService, r.DestinationCanonicalRevision = l.canonical, l.revision
	} else {
		r.SourceApp, r.SourceVersion = l.app, l.version
		r.SourceCanonicalService, r.SourceCanonicalRevision = l.canonical, l.revision
	}
	p.tel.Observe(r)
}

// workloadLabels are the labels Istio's metrics read from a workload.
type workloadLabels struct {
	app, version, canonical, revision string
}

// labelsOf reads them as Istio does: app (or app.kubernetes.io/name),
// version (or app.kubernetes.io/version), and the canonical-name and
// canonical-revision labels.
func labelsOf(ls map[string]string) workloadLabels {
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := ls[k]; v != "" {
				return v
			}
		}
		return ""
	}
	return workloadLabels{
		app:       first("app", "app.kubernetes.io/name"),
		version:   first("version", "app.kubernetes.io/version"),
		canonical: first("service.istio.io/canonical-name"),
		revision:  first("service.istio.io/canonical-revision"),
	}
}
