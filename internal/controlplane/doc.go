// Package controlplane is the mesh's brain: it turns the config snapshot
// and the workloads' announced sidecar addresses into the services each
// proxy may call, computes for every proxy only the resources that apply to
// it, and pushes them over the delta xDS stream (see internal/xds), tracking
// each proxy's ACKs and NACKs. It also serves the admin API that `palisade
// status` and `palisade describe` read.
package controlplane
