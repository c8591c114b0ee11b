package capture

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	for _, tt := range []struct {
		name, in, want, err string
	}{
		{name: "none", in: "", want: ""},
		{name: "all", in: "*", want: "*"},
		{name: "list keeps order", in: "15090,15021,15020", want: "15090,15021,15020"},
		{name: "empty elements skipped", in: "6000,7000,", want: "6000,7000"},
		{name: "spaces", in: " 80 , 443", want: "80,443"},
		{name: "zero", in: "0", err: `port "0"`},
		{name: "too big", in: "65536", err: `port "65536"`},
		{name: "name", in: "http", err: `port "http"`},
		{name: "wildcard in a list", in: "80,*", err: `port "*"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePorts(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Errorf("ParsePorts(%q) = %q, %v; want %q", tt.in, p, err, tt.want)
			}
		})
	}
}

func TestParseRanges(t *testing.T) {
	for _, tt := range []struct {
		name, in, want, err string
		loopback            bool
	}{
		{name: "none", in: "", want: ""},
		{name: "all", in: "*", want: "*"},
		{name: "list", in: "10.0.0.0/8,172.16.0.0/12", want: "10.0.0.0/8,172.16.0.0/12"},
		{name: "IPv6 left out", in: "2001:db8::/32,10.96.0.0/12", want: "10.96.0.0/12"},
		{name: "loopback", in: "127.1.2.3/32", want: "127.1.2.3/32", loopback: true},
		{name: "no mask", in: "10.0.0.1", err: `range "10.0.0.1"`},
		{name: "not an address", in: "mesh.local/8", err: `range "mesh.local/8"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRanges(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || r.String() != tt.want || r.hasLoopback() != tt.loopback {
				t.Errorf("ParseRanges(%q) = %q (loopback %v), %v; want %q (%v)", tt.in, r, r.hasLoopback(), err, tt.want, tt.loopback)
			}
		})
	}
}

func TestValidateGathersEveryProblem(t *testing.T) {
	c := Default()
	c.ProxyPort = 0
	c.Mode = "NAT"
	c.ProxyUIDs = []string{"istio-proxy"}
	c.ExcludeInterfaces = []string{"eth0/1"}
	c.HostLoopback = netip.MustParsePrefix("10.0.0.0/8")
	c.DNSServers = []netip.Addr{netip.MustParseAddr("::1")}
	_, err := Build(c)
	if err == nil {
		t.Fatal("Build accepted a broken config")
	}
	for _, want := range []string{"-p: port", `-m "NAT"`, `-u/-g "istio-proxy"`, `-c/-k "eth0/1"`, "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR", "DNS server ::1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Build(Config{}); err == nil || !strings.Contains(err.Error(), "-u: the proxy's uid is required") {
		t.Errorf("zero Config: %v", err)
	}
}

// TestGIDsDefaultToUIDs: -g unset follows -u, as istio-iptables does.
func TestGIDsDefaultToUIDs(t *testing.T) {
	c := Default()
	c.ProxyUIDs, c.ProxyGIDs = []string{"2000"}, nil
	set, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	if r := set.Restore(); !strings.Contains(r, "-A ISTIO_OUTPUT -m owner --gid-owner 2000 -j RETURN\n") {
		t.Errorf("no gid rule for 2000:\n%s", r)
	}
}

func TestHooksAndChains(t *testing.T) {
	c := Default()
	c.RedirectDNS, c.CaptureAllDNS = true, true
	set, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Tables(), ","); got != "nat,raw" {
		t.Errorf("tables %s", got)
	}
	if got := strings.Join(set.Chains("raw"), ","); got != "ISTIO_OUTPUT_DNS,ISTIO_INBOUND" {
		t.Errorf("raw chains %s", got)
	}
	var hooks []string
	for _, h := range set.Hooks("nat") {
		hooks = append(hooks, h.String())
	}
	if got := strings.Join(hooks, "; "); got != "-A PREROUTING -p tcp -j ISTIO_INBOUND; -A OUTPUT -j ISTIO_OUTPUT" {
		t.Errorf("nat hooks: %s", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "*", "15090,15021,15020", "6000,7000,", "10.0.0.0/8", "2001:db8::/32", "80,*", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParsePorts(s); err == nil {
			again, err := ParsePorts(p.String())
			if err != nil || again.String() != p.String() {
				t.Errorf("ports %q -> %q does not read back: %v", s, p, err)
			}
		}
		if r, err := ParseRanges(s); err == nil {
			again, err := ParseRanges(r.String())
			if err != nil || again.String() != r.String() {
				t.Errorf("ranges %q -> %q does not read back: %v", s, r, err)
			}
		}
	})
}
