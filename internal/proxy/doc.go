// Package proxy is the data plane: the sidecar's inbound listeners (peer
// authentication, mTLS termination, request authentication, authorization,
// X-Forwarded-Client-Cert, forwarding to the app on loopback) and its
// outbound side (an HTTP proxy listener that routes by Host, CONNECT
// tunnels and per-upstream local ports, DestinationRule TLS modes with auto
// mTLS, and secure naming of the server).
//
// In captured mode (Options.CaptureOutbound, CaptureInbound) it serves
// what iptables redirects, as Istio's sidecar does: the outbound capture
// (15001) reads SO_ORIGINAL_DST, maps the destination to a service port
// by VIP or endpoint address (Compiled.LookupAddr), sniffs the protocol
// and takes the outbound path, or follows meshConfig
// outboundTrafficPolicy (PassthroughCluster, BlackHoleCluster); the
// inbound capture (15006) picks the workload port by original
// destination port and takes the inbound path.
// https://istio.io/latest/docs/ops/deployment/application-requirements/
//
// Config arrives over xDS (see Store) and is compiled into an immutable
// Compiled value held in an atomic.Pointer; every connection and request
// reads the snapshot current when it starts.
package proxy
