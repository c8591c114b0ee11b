package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestWorkloadTTLFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantMax time.Duration
		wantDef time.Duration
		wantErr string
	}{
		{name: "nothing set takes the CA's defaults"},
		{name: "flags", args: []string{"--max-workload-cert-ttl", "48h", "--default-workload-cert-ttl", "1h"}, wantMax: 48 * time.Hour, wantDef: time.Hour},
		{name: "istiod's environment", env: map[string]string{"MAX_WORKLOAD_CERT_TTL": "48h", "DEFAULT_WORKLOAD_CERT_TTL": "2h"}, wantMax: 48 * time.Hour, wantDef: 2 * time.Hour},
		{name: "a flag wins over the environment", args: []string{"--max-workload-cert-ttl", "72h"}, env: map[string]string{"MAX_WORKLOAD_CERT_TTL": "48h"}, wantMax: 72 * time.Hour},
		{name: "max below the 24h default", args: []string{"--max-workload-cert-ttl", "1h"}, wantErr: "the default workload certificate TTL 24h0m0s exceeds the max 1h0m0s"},
		{name: "default over the max", args: []string{"--max-workload-cert-ttl", "2h", "--default-workload-cert-ttl", "3h"}, wantErr: "exceeds the max 2h0m0s"},
		{name: "default over the 90 day max", env: map[string]string{"DEFAULT_WORKLOAD_CERT_TTL": "2400h"}, wantErr: "exceeds the max 2160h0m0s"},
		{name: "bad environment value", env: map[string]string{"MAX_WORKLOAD_CERT_TTL": "90d"}, wantErr: `MAX_WORKLOAD_CERT_TTL="90d"`},
		{name: "zero flag", args: []string{"--max-workload-cert-ttl", "0s"}, wantErr: "--max-workload-cert-ttl 0s: must be positive"},
		{name: "negative environment value", env: map[string]string{"DEFAULT_WORKLOAD_CERT_TTL": "-1h"}, wantErr: "DEFAULT_WORKLOAD_CERT_TTL -1h0m0s: must be positive"},
		{name: "both wrong", args: []string{"--default-workload-cert-ttl", "-1s"}, env: map[string]string{"MAX_WORKLOAD_CERT_TTL": "x"}, wantErr: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			w := addWorkloadTTLFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			gotMax, gotDef, err := w.resolve(fs, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if gotMax != tt.wantMax || gotDef != tt.wantDef {
				t.Errorf("max, default = %s, %s; want %s, %s", gotMax, gotDef, tt.wantMax, tt.wantDef)
			}
		})
	}
}

func TestControlPlaneRefusesTTLFlagsWithCFSSL(t *testing.T) {
	err := runControlPlane(t.Context(), []string{"--config", t.TempDir(), "--external-ca-cfssl", "https://127.0.0.1:1", "--max-workload-cert-ttl", "48h"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CFSSL profile sets the lifetime") {
		t.Fatalf("err = %v", err)
	}
}
