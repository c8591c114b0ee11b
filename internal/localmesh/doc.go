// Package localmesh is `palisade up`: a whole mesh on one machine. It
// starts the control plane in-process, then for every Workload resource a
// sidecar (palisade-proxy) and the app as local processes, each sidecar
// proving itself with a one-time join token; it waits until all are
// healthy, prints where everything is, keeps following the config
// directory, and on shutdown stops every process it started.
package localmesh
