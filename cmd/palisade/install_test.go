package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunInstall(t *testing.T) {
	state := t.TempDir()
	var out, errOut bytes.Buffer
	if err := runCA(context.Background(), []string{"init", "--state", filepath.Join(state, "ca")}, &out, &errOut); err != nil {
		t.Fatalf("ca init: %v\n%s", err, errOut.String())
	}
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	images := []string{"--image", "palisade:1", "--proxy-image", "palisade-proxy:1"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    []string
	}{
		{name: "from the CA state", args: append([]string{"--state", state, "--namespace", "mesh"}, images...), want: []string{
			"kind: CustomResourceDefinition", "name: authorizationpolicies.security.istio.io", "kind: ValidatingWebhookConfiguration",
			"caBundle: LS0t", "namespace: mesh", "--inject-image=palisade-proxy:1"}},
		{name: "no CA", args: append([]string{"--state", t.TempDir()}, images...), wantErr: "no --ca-bundle, and no CA in"},
		{name: "bad bundle", args: append([]string{"--ca-bundle", roots}, images...), wantErr: "the CA bundle must be PEM certificates"},
		{name: "no images", args: []string{"--state", state}, wantErr: "image is required"},
		{name: "bad URL", args: append([]string{"--state", state, "--webhook-url", "http://127.0.0.1"}, images...), wantErr: `webhook URL "http://127.0.0.1"`},
		{name: "arguments", args: append([]string{"--state", state, "extra"}, images...), wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runInstall(context.Background(), tt.args, &out, &errOut)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v\n%s", err, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
		})
	}
}
