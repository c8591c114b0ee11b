package main

import (
	"io"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/svid"
)

func TestKeyTypeFlag(t *testing.T) {
	base := []string{"--workload", "default/sleep", "--control-plane", "127.0.0.1:15012", "--bundle", "root-cert.pem"}
	tests := []struct {
		name    string
		args    []string
		want    svid.KeyType
		wantErr string
	}{
		{name: "default is ECDSA P-256", want: svid.KeyECP256},
		{name: "rsa-2048", args: []string{"--key-type", "rsa-2048"}, want: svid.KeyRSA2048},
		{name: "rsa-4096", args: []string{"--key-type", "rsa-4096"}, want: svid.KeyRSA4096},
		{name: "unknown", args: []string{"--key-type", "rsa-1024"}, wantErr: `--key-type "rsa-1024": want ec-p256, rsa-2048 or rsa-4096`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFlags(append(append([]string{}, base...), tt.args...), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.keyType != tt.want {
				t.Errorf("key type = %q, want %q", f.keyType, tt.want)
			}
		})
	}
}

func TestCaptureFlags(t *testing.T) {
	base := []string{"--workload", "workshop/productcatalog", "--control-plane", "127.0.0.1:15012", "--bundle", "root-cert.pem"}
	tests := []struct {
		name    string
		args    []string
		wantApp string
		wantErr string
	}{
		{name: "captured port needs only its number", args: []string{"--capture", "--inbound", "port=5000,name=http"}, wantApp: "127.0.0.1:5000"},
		{name: "captured port keeps an app address given", args: []string{"--capture", "--inbound", "port=5000,app=127.0.0.1:8080"}, wantApp: "127.0.0.1:8080"},
		{name: "captured port with a listener of its own", args: []string{"--capture", "--inbound", "port=5000,listen=127.0.0.1:15100"}, wantErr: "listen= is not used with --capture"},
		{name: "explicit port without listener", args: []string{"--inbound", "port=5000,app=127.0.0.1:8080"}, wantErr: "listen= and app= are required without --capture"},
		{name: "explicit port unchanged", args: []string{"--inbound", "port=5000,listen=127.0.0.1:0,app=127.0.0.1:8080"}, wantApp: "127.0.0.1:8080"},
		{name: "bad capture address", args: []string{"--capture", "--capture-outbound", "15001"}, wantErr: `--capture-outbound "15001"`},
		{name: "bad dns upstream", args: []string{"--capture", "--dns-upstream", "10.96.0.10"}, wantErr: `--dns-upstream "10.96.0.10"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFlags(append(append([]string{}, base...), tt.args...), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.inbound) != 1 || f.inbound[0].App != tt.wantApp {
				t.Errorf("inbound %+v, want app %s", f.inbound, tt.wantApp)
			}
		})
	}
}
