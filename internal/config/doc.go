// Package config decodes, validates and watches the resources users write:
// Istio's own kinds (decoded into istio.io/api types), the legacy v1alpha1
// kinds that `palisade convert` reads, Namespace and ServiceAccount, the
// MeshConfig from mesh.yaml, and Palisade's own kinds under
// palisade.dev/v1alpha1. A directory of YAML becomes an immutable, versioned
// Snapshot; every consumer reads snapshots and never mutates them.
package config
