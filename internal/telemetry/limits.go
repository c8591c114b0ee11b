package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Limit names, the limit label of palisade_downstream_limit_exceeded_total.
// Each is the limit of the Envoy setting in parentheses.
const (
	LimitHeaderSize        = "request_headers_size"    // max_request_headers_kb: 431
	LimitHeaderCount       = "request_headers_count"   // max_headers_count: 431
	LimitHeaderTimeout     = "request_headers_timeout" // request_headers_timeout: 408
	LimitConnections       = "connections"             // the listener's max connections: reset
	LimitAuthzBody         = "ext_authz_request_body"  // with_request_body.max_request_bytes: 413
	LimitFraming           = "request_framing"         // the HTTP/1.1 codec's refusals: 400
	LimitStreamIdle        = "stream_idle_timeout"     // stream_idle_timeout: 408, flag SI
	LimitConcurrentStreams = "concurrent_streams"      // HTTP/2 max_concurrent_streams: stream reset
)

// Limits counts requests and connections refused because a limit was
// exceeded, one series per limit. A nil *Limits counts nothing.
type Limits struct {
	exceeded *prometheus.CounterVec
}

// NewLimits creates palisade_downstream_limit_exceeded_total, with every
// limit's series at zero, and registers it with reg.
func NewLimits(reg prometheus.Registerer) (*Limits, error) {
	l := &Limits{exceeded: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "palisade_downstream_limit_exceeded_total",
		Help: "Downstream requests and connections refused because a limit was exceeded.",
	}, []string{"limit"})}
	for _, n := range []string{LimitHeaderSize, LimitHeaderCount, LimitHeaderTimeout, LimitConnections, LimitAuthzBody, LimitFraming, LimitStreamIdle, LimitConcurrentStreams} {
		l.exceeded.WithLabelValues(n)
	}
	if err := reg.Register(l.exceeded); err != nil {
		return nil, err
	}
	return l, nil
}

// Exceeded counts one refusal for limit.
func (l *Limits) Exceeded(limit string) {
	if l != nil {
		l.exceeded.WithLabelValues(limit).Inc()
	}
}
