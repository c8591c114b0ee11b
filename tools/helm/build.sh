#!/bin/sh
# Builds the pinned Helm (helm.sh/helm/v4 v4.3.2) that renders the chart in
# deploy/helm/palisade for the test comparing it with `palisade install`.
# Usage: tools/helm/build.sh [OUTPUT_DIR]   (default: tools/helm/bin)
# The test finds it through $PALISADE_HELM, or tools/helm/bin/helm.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/helm" helm.sh/helm/v4/cmd/helm
echo "$out/helm"
