// Package telemetry records what the sidecar saw: one Entry per HTTP
// request or TCP connection, written as a JSON access log line (AccessLog,
// field names as in Istio's default JSON access log) and counted in
// Prometheus metrics with Istio's standard names and labels (Metrics), so
// existing Istio dashboards and queries work unchanged.
package telemetry
