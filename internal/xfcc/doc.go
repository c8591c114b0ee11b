// Package xfcc builds and parses the X-Forwarded-Client-Cert header in
// Envoy's format, the way an Istio sidecar sets it on inbound requests.
//
// A header value is a comma-separated list of elements, one per proxy that
// terminated mTLS; each element is a semicolon-separated list of Key=Value
// pairs with the keys By, Hash, Cert, Chain, Subject, URI and DNS (case
// insensitive). A value holding ',', ';' or '=' is double-quoted, with '"'
// and '\' escaped by a backslash. Subject, Cert and Chain are always quoted.
//
// Istio's sidecar inbound listener uses forward_client_cert_details
// APPEND_FORWARD with set_current_client_cert_details {subject, uri, dns}
// (IstioSidecar), so the element it appends reads
//
//	By=<server URI SAN>;Hash=<sha256 hex of the client cert>;Subject="<subject>";URI=<client URI SAN>
//
// and it is the last element of the header; its gateways default to
// SANITIZE_SET. On a connection without a client certificate every mode
// but ALWAYS_FORWARD_ONLY removes the header (see Forward).
package xfcc
