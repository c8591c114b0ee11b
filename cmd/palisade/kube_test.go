package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/controlplane"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     controlplane.WorkloadKey
		wantErr  bool
	}{
		{name: "namespace/name", in: "shop/cart", want: controlplane.WorkloadKey{Namespace: "shop", Name: "cart"}},
		{name: "pod.namespace", in: "cart-7d9f.shop", want: controlplane.WorkloadKey{Namespace: "shop", Name: "cart-7d9f"}},
		{name: "dotted pod name", in: "cart.v2.shop", want: controlplane.WorkloadKey{Namespace: "shop", Name: "cart.v2"}},
		{name: "pod alone is in default", in: "cart", want: controlplane.WorkloadKey{Namespace: "default", Name: "cart"}},
		{name: "trailing dot", in: "cart.", want: controlplane.WorkloadKey{Namespace: "default", Name: "cart."}},
		{name: "empty", in: "", wantErr: true},
		{name: "bad slash form", in: "shop/", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTarget(tc.in)
			if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
				t.Errorf("parseTarget(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// One config source: a directory or the API server, never both, never
// neither; a kubeconfig that cannot be read is an error naming it.
func TestControlPlaneConfigSourceFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent-kubeconfig")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "neither", args: nil, code: 2, want: "--config (or --kubeconfig, --kubernetes) is required"},
		{name: "both", args: []string{"--config", t.TempDir(), "--kubeconfig", missing}, code: 2, want: "exclusive"},
		{name: "unreadable kubeconfig", args: []string{"--kubeconfig", missing, "--state", t.TempDir()}, want: "absent-kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runControlPlane(context.Background(), tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			var ee exitError
			if tc.code != 0 && (!errors.As(err, &ee) || ee.code != tc.code) {
				t.Errorf("exit code: %v, want %d", err, tc.code)
			}
		})
	}
}
