package proxy

import "palisade.dev/palisade/internal/telemetry"

// Record is one finished request or connection.
type Record = telemetry.Entry

// Telemetry is where a sidecar reports what it did; either part may be
// nil.
type Telemetry struct {
	AccessLog *telemetry.AccessLog
	Metrics   *telemetry.Metrics
}

// Observe reports a finished request or connection.
func (t *Telemetry) Observe(e *telemetry.Entry) {
	if t == nil {
		return
	}
	if t.AccessLog != nil {
		_ = t.AccessLog.Log(e)
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

func (p *Proxy) observe(r *Record) { p.tel.Observe(r) }
