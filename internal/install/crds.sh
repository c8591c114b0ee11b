#!/bin/sh
# Copies Istio's official CRD definitions from the istio.io/api module that
# go.mod pins into this package (embedded by crds.go) and into the Helm
# chart. Run by `go generate ./internal/install/`; crds_test.go checks that
# both copies are current.
set -eu
go mod download istio.io/api
dir=$(go list -m -f '{{.Dir}}' istio.io/api)
src="$dir/kubernetes/customresourcedefinitions.gen.yaml"
cp "$src" crds.gen.yaml
chmod 644 crds.gen.yaml
cp crds.gen.yaml ../../deploy/helm/palisade/crds/customresourcedefinitions.gen.yaml
chmod 644 ../../deploy/helm/palisade/crds/customresourcedefinitions.gen.yaml
