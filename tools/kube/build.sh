#!/bin/sh
# Builds the pinned kube-apiserver (k8s.io/kubernetes v1.37.2, staging modules
# at v0.37.2) that the Kubernetes-mode tests start on 127.0.0.1.
# Usage: tools/kube/build.sh [OUTPUT_DIR]   (default: tools/kube/bin)
# Tests find it through $PALISADE_KUBE_APISERVER, or tools/kube/bin/kube-apiserver.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
v=v1.37.2
CGO_ENABLED=0 go build -trimpath -o "$out/kube-apiserver" \
	-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=$v" \
	k8s.io/kubernetes/cmd/kube-apiserver
CGO_ENABLED=0 go build -trimpath -o "$out/kubectl" \
	-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=$v" \
	k8s.io/kubernetes/cmd/kubectl
echo "$out/kube-apiserver"
echo "$out/kubectl"
