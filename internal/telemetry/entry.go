package telemetry

import "time"

// Protocols, as Istio's request_protocol label reports them.
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
	ProtocolTCP  = "tcp"
)

// Directions of traffic through a sidecar.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Reporters, as Istio's reporter label names them: the client's sidecar
// reports as source, the server's as destination.
const (
	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// Entry is one HTTP or gRPC request, or one TCP connection, as a sidecar
// saw it. Empty strings mean unknown. An Entry holds no secrets: no
// headers beyond those named here, no tokens.
type Entry struct {
	Start    time.Time
	Duration time.Duration

	Protocol    string // ProtocolHTTP, ProtocolGRPC or ProtocolTCP
	HTTPVersion string // "HTTP/1.1", "HTTP/2"; "" for TCP
	Direction   string // Inbound or Outbound
	// Reporter is ReporterSource or ReporterDestination; when empty it
	// follows Direction (outbound: source, inbound: destination).
	Reporter string

	SourcePrincipal, DestinationPrincipal     string // spiffe://...
	SourceWorkload, SourceNamespace           string
	SourceApp, SourceVersion                  string
	DestinationWorkload, DestinationNamespace string
	DestinationApp, DestinationVersion        string
	// Canonical service and revision, as Istio reads them from a
	// workload's service.istio.io/canonical-name and -revision labels;
	// when empty they follow App (else the workload) and Version (else
	// "latest"), as Istio's do.
	SourceCanonicalService, SourceCanonicalRevision           string
	DestinationCanonicalService, DestinationCanonicalRevision string
	// SourceCluster and DestinationCluster default to DefaultCluster for
	// a known workload.
	SourceCluster, DestinationCluster string
	// DestinationService is the service's host
	// (productcatalog.workshop.svc.cluster.local).
	DestinationService string
	// DestinationServiceName and DestinationServiceNamespace default to the
	// first label of DestinationService and to DestinationNamespace.
	DestinationServiceName, DestinationServiceNamespace string

	// MTLS reports whether the connection was mutual TLS with a peer
	// certificate on both sides.
	MTLS bool

	Method, Path, Authority, UserAgent, RequestID string
	ForwardedFor                                  string // X-Forwarded-For as received
	ResponseCode                                  int    // 0 for TCP
	GRPCStatus                                    string // "0".."16"; "" when not gRPC
	ResponseFlags                                 string // Envoy's short flags ("UF,URX"); "" for none

	BytesReceived, BytesSent int64 // from the downstream, to the downstream

	// Decision and Policy are the authorization outcome: "ALLOW", "DENY"
	// and the deciding policy ("workshop/productapp[0]"); "" when no policy
	// decided.
	Decision, Policy string
	// AuthError is why request authentication refused the request (the
	// JWT error, "Jwt is expired"); "" when it did not.
	AuthError string
	// RequestPrincipal is the validated JWT's "<iss>/<sub>"; "" without
	// one.
	RequestPrincipal string
	// DestinationPort is the workload port an inbound request or
	// connection came in for; 0 when not known.
	DestinationPort uint32

	UpstreamHost string // address the request went to
	// UpstreamCluster is Envoy's cluster name where Istio's logs have
	// one that matters: PassthroughCluster and BlackHoleCluster for
	// captured traffic to no mesh service; "" otherwise.
	UpstreamCluster  string
	DownstreamRemote string // address the request came from
}

// reporter returns the reporter label for e.
func (e *Entry) reporter() string {
	if e.Reporter != "" {
		return e.Reporter
	}
	if e.Direction == Outbound {
		return ReporterSource
	}
	return ReporterDestination
}
