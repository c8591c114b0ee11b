package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each wrong use of --ca cert-manager is refused, with exit code 2, before
// anything reaches an API server.
func TestControlPlaneCertManagerFlags(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown CA", args: []string{"--ca", "vault"}, want: "the only external CA named so is cert-manager"},
		{name: "with cacerts", args: []string{"--ca", "cert-manager", "--cacerts", t.TempDir()}, want: "excludes --cacerts"},
		{name: "with the mesh CA's max TTL", args: []string{"--ca", "cert-manager", "--max-workload-cert-ttl", "48h"}, want: "--max-client-certificate-duration"},
		{name: "no issuer", args: []string{"--ca", "cert-manager", "--cert-manager-kubeconfig", kc}, want: "want KIND/NAME"},
		{name: "issuer without kind", args: []string{"--ca", "cert-manager", "--issuer-ref", "istio-ca", "--cert-manager-kubeconfig", kc}, want: "want KIND/NAME"},
		{name: "no kubeconfig", args: []string{"--ca", "cert-manager", "--issuer-ref", "Issuer/istio-ca"}, want: "--cert-manager-kubeconfig (or KUBECONFIG) is required"},
		{name: "default over max", args: []string{"--ca", "cert-manager", "--issuer-ref", "Issuer/istio-ca", "--cert-manager-kubeconfig", kc,
			"--default-workload-cert-ttl", "2h", "--max-client-certificate-duration", "1h"}, want: "exceeds the maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runControlPlane(t.Context(), append([]string{"--config", t.TempDir()}, tt.args...), io.Discard, io.Discard)
			var ee exitError
			if !errors.As(err, &ee) || ee.code != 2 || ee.err == nil || !strings.Contains(ee.err.Error(), tt.want) {
				t.Fatalf("err = %v, want exit 2 with %q", err, tt.want)
			}
		})
	}
}
