// Package proxy is the data plane: the sidecar's inbound listeners (peer
// authentication, mTLS termination, request authentication, authorization,
// X-Forwarded-Client-Cert, forwarding to the app on loopback) and its
// outbound side (an HTTP proxy listener that routes by Host, CONNECT
// tunnels and per-upstream local ports, DestinationRule TLS modes with auto
// mTLS, and secure naming of the server).
//
// Config arrives over xDS (see Store) and is compiled into an immutable
// Compiled value held in an atomic.Pointer; every connection and request
// reads the snapshot current when it starts.
package proxy
