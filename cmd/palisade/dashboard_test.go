package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/localmesh"
)

func TestBrowserCommand(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "BROWSER wins", env: map[string]string{"BROWSER": "firefox --new-tab", "DISPLAY": ":0"}, want: "firefox"},
		{name: "no display, no browser", env: map[string]string{}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := browserCommand(func(k string) string { return tc.env[k] }); got != tc.want {
				t.Errorf("browserCommand = %q, want %q", got, tc.want)
			}
		})
	}
}

func writeState(t *testing.T, st localmesh.State) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, localmesh.StateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunDashboard(t *testing.T) {
	t.Setenv("BROWSER", "")
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	loopback := writeState(t, localmesh.State{AdminAddress: "127.0.0.1:15014"})
	exposed := writeState(t, localmesh.State{AdminAddress: "127.0.0.1:15014", DashboardURL: "https://10.0.0.5:8443"})
	tests := []struct {
		name     string
		state    string
		want     []string
		wantCode int
	}{
		{name: "the admin listener", state: loopback, want: []string{"Dashboard: http://127.0.0.1:15014/dashboard/", "No browser to open here"}},
		{name: "exposed, with its token", state: exposed, want: []string{"http://127.0.0.1:15014/dashboard/", "https://10.0.0.5:8443/dashboard/login?token="}},
		{name: "no mesh", state: t.TempDir(), wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runDashboard(context.Background(), []string{"--state", tc.state}, &out, &errOut)
			var ee exitError
			if tc.wantCode != 0 {
				if !errors.As(err, &ee) || ee.code != tc.wantCode {
					t.Fatalf("err %v, want exit %d", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	tok, err := os.ReadFile(filepath.Join(exposed, localmesh.DashboardTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(exposed, localmesh.DashboardTokenFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", fi.Mode().Perm())
	}
	if len(strings.TrimSpace(string(tok))) != 64 {
		t.Errorf("token %q: want 64 hex digits", tok)
	}
}

func TestAuthzReplayFlags(t *testing.T) {
	state := writeState(t, localmesh.State{AdminAddress: "127.0.0.1:1"})
	for _, args := range [][]string{
		{"--state", state}, // no -f
		{"--state", state, "-f", "x", "--since", "0s"},    // empty window
		{"--state", state, "-f", "x", "--since", "1000h"}, // past the longest
	} {
		var out, errOut bytes.Buffer
		err := runAuthzReplay(context.Background(), args, &out, &errOut)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%q: err %v, want exit 2", args, err)
		}
	}
}

func TestDashboardFlagsCheck(t *testing.T) {
	tests := []struct {
		name string
		f    dashboardFlags
		want string
	}{
		{name: "defaults", f: dashboardFlags{records: 10}},
		{name: "loopback, plain", f: dashboardFlags{records: 10, addr: "127.0.0.1:9000"}},
		{name: "exposed with TLS", f: dashboardFlags{records: 10, addr: "0.0.0.0:9000", cert: "c", key: "k"}},
		{name: "exposed, plaintext asked for", f: dashboardFlags{records: 10, addr: "0.0.0.0:9000", plaintext: true}},
		{name: "exposed without TLS", f: dashboardFlags{records: 10, addr: "0.0.0.0:9000"}, want: "--dashboard-insecure-plaintext"},
		{name: "a certificate without its key", f: dashboardFlags{records: 10, addr: "0.0.0.0:9000", cert: "c"}, want: "go together"},
		{name: "TLS without a listener", f: dashboardFlags{records: 10, cert: "c", key: "k"}, want: "not set"},
		{name: "no records", f: dashboardFlags{records: 0}, want: "--dashboard-records"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.check()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("check() = %v, want %q", err, tc.want)
			}
		})
	}
}
