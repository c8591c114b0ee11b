// Package dashboard is the control plane's web UI: it gathers the
// records each sidecar keeps (from their admin listeners) into a bounded
// ring per workload, and serves, over the control plane's admin API, the
// service graph with its mTLS state, a page per workload, the feed of
// denials, and the preview of a proposed policy set against the recorded
// traffic. Its assets are embedded; nothing is fetched from elsewhere.
package dashboard
