package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunCA(t *testing.T) {
	state := filepath.Join(t.TempDir(), "ca")
	steps := []struct {
		name    string
		args    []string
		wantErr string
		want    []string
	}{
		{name: "show before init", args: []string{"show", "--state", state}, wantErr: "no CA state"},
		{name: "init", args: []string{"init", "--state", state, "--key-type", "rsa2048"}, want: []string{"CA initialised", "1     issuing  RSA 2048"}},
		{name: "init twice", args: []string{"init", "--state", state}, wantErr: "already holds a CA"},
		{name: "rotate", args: []string{"rotate-root", "--state", state, "--key-type", "ec"}, want: []string{"new root 2", "2     pending  ECDSA P-256", "Bundle:        2 root(s)"}},
		{name: "rotate during grace", args: []string{"rotate-root", "--state", state}, wantErr: "already waiting"},
		{name: "show json", args: []string{"show", "--state", state, "-o", "json"}, want: []string{`"mode": "self-signed"`, `"state": "pending"`}},
		{name: "bad key type", args: []string{"init", "--state", state, "--key-type", "dsa"}, wantErr: "want ec, rsa2048 or rsa4096"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: "unknown command"},
		{name: "no command", args: nil, wantErr: "a command is required"},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runCA(context.Background(), tt.args, &out, &errOut)
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
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
