package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/capture"
)

// TestInitDryRunIsIstiosDefault: the flags Istio's injector gives
// istio-iptables, and no flags at all, print Istio's rule set for them
// (internal/capture/testdata/default.golden names its source).
func TestInitDryRunIsIstiosDefault(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "internal", "capture", "testdata", "default.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--dry-run"},
		{"--dry-run"},
		{"-n"},
	} {
		var out bytes.Buffer
		if err := runInit(context.Background(), args, &out, io.Discard); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if out.String() != string(want) {
			t.Errorf("%q printed:\n%s\nwant:\n%s", args, out.String(), want)
		}
	}
}

func TestInitFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string // lines the rules must hold
		wantErr []string
	}{
		{name: "pod ports only", args: []string{"-b", "8080,9090"},
			want: []string{"-A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_IN_REDIRECT", "-A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_IN_REDIRECT"}},
		{name: "long names", args: []string{"--envoy-port", "16001", "--proxy-uid", "2000", "--istio-service-cidr", "10.250.0.0/16"},
			want: []string{"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001", "-A ISTIO_OUTPUT -m owner --gid-owner 2000 -j RETURN", "-A ISTIO_OUTPUT -d 10.250.0.0/16 -j ISTIO_REDIRECT"}},
		{name: "dns from the environment", args: []string{"--capture-all-dns"}, env: map[string]string{"ISTIO_META_DNS_CAPTURE": "true"},
			want: []string{"-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-port 15053"}},
		{name: "excluded outbound", args: []string{"-x", "10.96.0.0/12", "-o", "5432"},
			want: []string{"-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN", "-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN"}},
		{name: "several uids, a trailing comma", args: []string{"-u", "1337,1338,"},
			want: []string{"-A ISTIO_OUTPUT -m owner --uid-owner 1338 -j RETURN", "-A ISTIO_OUTPUT -m owner --gid-owner 1338 -j RETURN"}},
		{name: "tproxy", args: []string{"-m", "TPROXY"}, want: []string{"* mangle", "-A PREROUTING -p tcp -j ISTIO_INBOUND"}},
		{name: "every mistake at once",
			args:    []string{"-p", "0", "-m", "NAT", "-b", "80,x", "-x", "*", "-u", "istio", "--iptables-backend", "nftables"},
			wantErr: []string{"--envoy-port \"0\"", "-m \"NAT\"", "--istio-inbound-ports \"80,x\"", "--istio-service-exclude-cidr \"*\"", "-u/-g \"istio\"", "iptables backend \"nftables\""}},
		{name: "no wildcard for excluded ports", args: []string{"-d", "*"}, wantErr: []string{"--istio-local-exclude-ports \"*\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseInitFlags(tt.args, io.Discard, env(tt.env))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			set, err := capture.Build(f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			rules := set.Restore()
			for _, w := range tt.want {
				if !strings.Contains(rules, w+"\n") {
					t.Errorf("rules lack %q:\n%s", w, rules)
				}
			}
		})
	}
}
