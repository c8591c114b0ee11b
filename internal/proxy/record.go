package proxy

import "time"

// Record describes one finished HTTP request or TCP connection, as the
// access log and metrics see it.
type Record struct {
	Start                time.Time
	Duration             time.Duration
	Protocol             string // "http", "grpc", "tcp"
	Direction            string // "inbound", "outbound"
	SourcePrincipal      string // spiffe://…, "" when unknown
	DestinationPrincipal string
	SourceNamespace      string
	SourceWorkload       string
	DestinationNamespace string
	DestinationWorkload  string
	DestinationService   string
	MTLS                 bool
	Method, Path         string
	Authority, UserAgent string
	RequestID            string
	ResponseCode         int
	ResponseFlags        string
	BytesReceived        int64
	BytesSent            int64
	Decision             string // ALLOW, DENY, CUSTOM-DENY, …; "" when no policy decided
	Policy               string // namespace/name[rule] that decided
	UpstreamHost         string
	DownstreamRemote     string
	TCPOpen              bool // a TCP connection opened (no bytes yet)
}

func (p *Proxy) observe(r *Record) {
	if p.obs != nil {
		p.obs.Observe(r)
	}
}
