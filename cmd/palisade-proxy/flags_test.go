package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

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

func TestJWTCacheSizeFlag(t *testing.T) {
	base := []string{"--workload", "default/sleep", "--control-plane", "127.0.0.1:15012", "--bundle", "root-cert.pem"}
	tests := []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{name: "default is Envoy's 100", want: 100},
		{name: "larger", args: []string{"--jwt-cache-size", "5000"}, want: 5000},
		{name: "off", args: []string{"--jwt-cache-size", "0"}, want: 0},
		{name: "negative", args: []string{"--jwt-cache-size", "-1"}, wantErr: "--jwt-cache-size -1: must be 0 (off) or more"},
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
			if f.jwtCacheSize != tt.want {
				t.Errorf("jwt cache size = %d, want %d", f.jwtCacheSize, tt.want)
			}
		})
	}
}

func TestLimitFlags(t *testing.T) {
	base := []string{"--workload", "default/sleep", "--control-plane", "127.0.0.1:15012", "--bundle", "root-cert.pem"}
	f, err := parseFlags(append(base, "--max-request-headers-kb", "96", "--max-connections", "20000", "--request-headers-timeout", "3s"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.limits.MaxRequestHeadersKB != 96 || f.limits.MaxConnections != 20000 || f.limits.RequestHeadersTimeout.String() != "3s" ||
		f.limits.MaxRequestHeaders != 100 || f.limits.MaxConcurrentStreams != 1000 {
		t.Errorf("limits = %+v", f.limits)
	}
	// The gateway takes the same limits: its HTTP listeners' stream idle
	// timeout is 5 minutes unless set.
	gwArgs := append([]string{"gateway", "--port", "80=127.0.0.1:8080"}, base...)
	gw, err := parseFlags(gwArgs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if gw.limits.StreamIdleTimeout != 5*time.Minute {
		t.Errorf("gateway stream idle timeout = %v, want 5m", gw.limits.StreamIdleTimeout)
	}
	if gw, err = parseFlags(append(gwArgs, "--stream-idle-timeout", "30s"), io.Discard); err != nil || gw.limits.StreamIdleTimeout != 30*time.Second {
		t.Errorf("gateway --stream-idle-timeout 30s: %v, err %v", gw.limits.StreamIdleTimeout, err)
	}
	for _, bad := range [][]string{
		{"--max-request-headers-kb", "0"}, {"--max-concurrent-streams", "0"}, {"--max-connections", "-1"},
		{"--request-headers-timeout", "0s"}, {"--stream-idle-timeout", "0s"}, {"--log-level", "loud"},
	} {
		if _, err := parseFlags(append(append([]string{}, base...), bad...), io.Discard); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: err = %v, want one naming %s", bad, err, bad[0])
		}
	}
}

func TestRefusesRootUnlessAllowed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: nothing to refuse")
	}
	err := run(context.Background(), []string{"--workload", "default/sleep", "--control-plane", "127.0.0.1:1", "--bundle", "/nonexistent/root-cert.pem"})
	if err == nil || !strings.Contains(err.Error(), "refusing to run as root") {
		t.Fatalf("run as root: err = %v, want a refusal", err)
	}
	// Allowed, it goes on to read the bundle.
	err = run(context.Background(), []string{"--allow-root", "--workload", "default/sleep", "--control-plane", "127.0.0.1:1", "--bundle", "/nonexistent/root-cert.pem"})
	if err == nil || !strings.Contains(err.Error(), "--bundle") {
		t.Fatalf("run with --allow-root: err = %v, want the missing bundle", err)
	}
}
