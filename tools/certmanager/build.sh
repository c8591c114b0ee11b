#!/bin/sh
# Builds cert-manager's own controllers (github.com/cert-manager/cert-manager
# v1.21.2) as one program, with the module's CRDs beside it, for the
# cert-manager CA path's tests. Usage: tools/certmanager/build.sh [OUTPUT_DIR]
# (default: tools/certmanager/bin). Tests find it through
# $PALISADE_CERT_MANAGER, or tools/certmanager/bin/cert-manager-controllers,
# and the CRDs in crds/ next to it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out/crds"
cd "$here"
CGO_ENABLED=0 go build -o "$out/cert-manager-controllers" ./cmd/cert-manager-controllers
src=$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
cp "$src"/deploy/crds/cert-manager.io_*.yaml "$out/crds/"
chmod 0644 "$out"/crds/*.yaml
echo "$out/cert-manager-controllers"
