package capture

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/default.golden and testdata/cases/*.golden from the current output")

// istioTestConfig is constructTestConfig of Istio's
// tools/istio-iptables/pkg/capture/run_test.go: istio-iptables' own flag
// defaults, no inbound or outbound capture unless a case asks.
func istioTestConfig() Config {
	return Config{
		ProxyPort: 15001, InboundCapturePort: 15006, InboundTunnelPort: 15008,
		ProxyUIDs: []string{"1337"}, ProxyGIDs: []string{"1337"}, Mode: Redirect,
		TProxyMark: 1337, TProxyRouteTable: 133, OwnerGroupsInclude: "*",
		HostLoopback: netip.MustParsePrefix("127.0.0.1/32"),
	}
}

func mustRanges(t *testing.T, s string) Ranges {
	t.Helper()
	r, err := ParseRanges(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustPorts(t *testing.T, s string) Ports {
	t.Helper()
	p, err := ParsePorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prefixes(t *testing.T, s string) []netip.Prefix { return mustRanges(t, s).CIDRs }

func ports(t *testing.T, s string) []uint16 { return mustPorts(t, s).Ports }

// istioIPv4 takes the IPv4 iptables-restore input out of one of Istio's
// golden files. Those record every command the dry run ran: the
// iptables-save/ip6tables-save probes, then the IPv4 restore input, then,
// with IPv6 on, the IPv6 one. Tables are written in name order, so the IPv6
// part starts where the order goes back.
func istioIPv4(raw []byte) string {
	var out []string
	last := ""
	for _, l := range strings.Split(string(raw), "\n") {
		if l == "iptables-save" || l == "ip6tables-save" || l == "" {
			continue
		}
		if table, ok := strings.CutPrefix(l, "* "); ok {
			if table <= last {
				break
			}
			last = table
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

// istioGolden is the IPv4 part of Istio's own golden file for a case, read
// from a checkout of github.com/istio/istio named by $PALISADE_ISTIO_SRC:
// tools/istio-iptables/pkg/capture/testdata/NAME.golden, or for cni-NAME
// cni/pkg/plugin/testdata/NAME.txt.golden. Without it, "" and false.
func istioGolden(t *testing.T, name string) (string, bool) {
	t.Helper()
	src := os.Getenv("PALISADE_ISTIO_SRC")
	if src == "" {
		return "", false
	}
	path := filepath.Join(src, "tools", "istio-iptables", "pkg", "capture", "testdata", name+".golden")
	if n, ok := strings.CutPrefix(name, "cni-"); ok {
		path = filepath.Join(src, "cni", "pkg", "plugin", "testdata", n+".txt.golden")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return istioIPv4(raw), true
}

// TestBuildMatchesIstio runs the cases of Istio's own rule-set tests
// (github.com/istio/istio tools/istio-iptables/pkg/capture/run_test.go's
// getCommonTestCases, same names and settings, and the CNI plugin's
// cni/pkg/plugin/plugin_dryrun_test.go as cni-NAME) and compares Build's
// rules with testdata/cases/NAME.golden, Build's own output, which was
// checked line for line against the IPv4 part of Istio's golden files at
// istio/istio commit 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c. With
// $PALISADE_ISTIO_SRC naming an Istio checkout, each case is compared with
// Istio's golden file there as well. -update rewrites testdata/cases.
func TestBuildMatchesIstio(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(t *testing.T, c *Config)
	}{
		{"empty", func(*testing.T, *Config) {}},
		{"ip-range", func(t *testing.T, c *Config) {
			c.OutboundRangesExclude = prefixes(t, "1.1.0.0/16")
			c.OutboundRanges = mustRanges(t, "9.9.0.0/16")
			c.RedirectDNS = true
			c.ProxyGIDs, c.ProxyUIDs = []string{"1", "2"}, []string{"3", "4"}
			c.DNSServers = []netip.Addr{netip.MustParseAddr("127.0.0.53")}
		}},
		{"tproxy", func(t *testing.T, c *Config) {
			c.Mode = TProxy
			c.InboundPorts = Ports{All: true}
			c.OutboundRangesExclude = prefixes(t, "1.1.0.0/16")
			c.OutboundRanges = mustRanges(t, "9.9.0.0/16")
			c.RedirectDNS = true
			c.DNSServers = []netip.Addr{netip.MustParseAddr("127.0.0.53")}
			c.ExcludeInterfaces = []string{"not-istio-nic"}
		}},
		{"kube-virt-interfaces", func(t *testing.T, c *Config) {
			c.RerouteVirtualInterfaces = []string{"eth1", "eth2"}
			c.OutboundRanges = Ranges{All: true}
		}},
		{"ipnets", func(t *testing.T, c *Config) { c.OutboundRanges = mustRanges(t, "10.0.0.0/8") }},
		{"ipnets-with-kube-virt-interfaces", func(t *testing.T, c *Config) {
			c.RerouteVirtualInterfaces = []string{"eth1", "eth2"}
			c.OutboundRanges = mustRanges(t, "10.0.0.0/8")
		}},
		{"inbound-ports-include", func(t *testing.T, c *Config) { c.InboundPorts = mustPorts(t, "32000,31000") }},
		{"inbound-ports-wildcard", func(t *testing.T, c *Config) { c.InboundPorts = Ports{All: true} }},
		{"inbound-ports-tproxy", func(t *testing.T, c *Config) {
			c.InboundPorts = mustPorts(t, "32000,31000")
			c.Mode = TProxy
		}},
		{"inbound-ports-wildcard-tproxy", func(t *testing.T, c *Config) {
			c.InboundPorts = Ports{All: true}
			c.Mode = TProxy
		}},
		{"dns-uid-gid", func(t *testing.T, c *Config) {
			c.RedirectDNS = true
			c.DNSServers = []netip.Addr{netip.MustParseAddr("127.0.0.53")}
			c.ProxyGIDs, c.ProxyUIDs = []string{"1", "2"}, []string{"3", "4"}
		}},
		// DNS asked for, but no servers and not all DNS: Istio turns it off.
		{"ipv6-dns-uid-gid", func(t *testing.T, c *Config) {
			c.RedirectDNS = true
			c.ProxyGIDs, c.ProxyUIDs = []string{"1", "2"}, []string{"3", "4"}
		}},
		{"outbound-owner-groups", func(t *testing.T, c *Config) { c.OwnerGroupsInclude = "java,202" }},
		{"outbound-owner-groups-exclude", func(t *testing.T, c *Config) { c.OwnerGroupsExclude = "888,ftp" }},
		{"outbound-ports-include", func(t *testing.T, c *Config) { c.OutboundPortsInclude = ports(t, "32000,31000") }},
		{"loopback-outbound-iprange", func(t *testing.T, c *Config) {
			c.OutboundRanges = mustRanges(t, "127.1.2.3/32")
			c.RedirectDNS = true
			c.DNSServers = []netip.Addr{netip.MustParseAddr("127.0.0.53")}
			c.ProxyGIDs, c.ProxyUIDs = []string{"1", "2"}, []string{"3", "4"}
		}},
		{"basic-exclude-nic", func(t *testing.T, c *Config) { c.ExcludeInterfaces = []string{"not-istio-nic"} }},
		{"drop-invalid", func(t *testing.T, c *Config) { c.DropInvalid = true }},
		{"host-ipv4-loopback-cidr", func(t *testing.T, c *Config) {
			c.HostLoopback = netip.MustParsePrefix("127.0.0.1/8")
		}},
		// The CNI plugin's cases: injector defaults, the status port 15020
		// also excluded outbound, the three excluded inbound ports sorted.
		{"cni-basic", cniDefaults(nil)},
		{"cni-tproxy", cniDefaults(func(t *testing.T, c *Config) { c.Mode = TProxy })},
		{"cni-dns", cniDefaults(func(t *testing.T, c *Config) { c.RedirectDNS, c.CaptureAllDNS = true, true })},
		{"cni-invalid-drop", cniDefaults(func(t *testing.T, c *Config) { c.DropInvalid = true })},
		{"cni-include-exclude-ip", cniDefaults(func(t *testing.T, c *Config) {
			c.OutboundRanges = mustRanges(t, "127.0.0.0/8")
			c.OutboundRangesExclude = prefixes(t, "10.0.0.0/8")
		})},
		{"cni-include-exclude-ports", cniDefaults(func(t *testing.T, c *Config) {
			c.InboundPorts = mustPorts(t, "1111,2222")
			c.InboundPortsExclude = ports(t, "3333,4444")
			c.OutboundPortsExclude = ports(t, "5555,6666")
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := istioTestConfig()
			tt.edit(t, &c)
			set, err := Build(c)
			if err != nil {
				t.Fatal(err)
			}
			got := set.Restore()
			path := filepath.Join("testdata", "cases", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("rules differ from %s\ngot:\n%s\nwant:\n%s", path, got, want)
			}
			if istio, ok := istioGolden(t, tt.name); ok && got != istio {
				t.Errorf("rules differ from Istio's golden file for %s\ngot:\n%s\nwant:\n%s", tt.name, got, istio)
			}
		})
	}
}

func cniDefaults(edit func(t *testing.T, c *Config)) func(t *testing.T, c *Config) {
	return func(t *testing.T, c *Config) {
		*c = Default()
		c.InboundPortsExclude = []uint16{15020, 15021, 15090}
		c.OutboundPortsExclude = []uint16{15020}
		if edit != nil {
			edit(t, c)
		}
	}
}

// TestDefaultGolden: the rules for Default(), the flags Istio's injector
// gives its init container. testdata/default.golden is Istio's
// cni/pkg/plugin/testdata/basic.txt.golden for the same pod with the two
// differences between the CNI plugin and the init container taken out by
// hand: no `-o 15020` lines, and -d in the template's order
// 15090,15021,15020.
func TestDefaultGolden(t *testing.T) {
	set, err := Build(Default())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "default.golden")
	if *update {
		if err := os.WriteFile(path, []byte(set.Restore()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Restore(); got != string(want) {
		t.Errorf("Default() rules:\n%s\nwant (%s):\n%s", got, path, want)
	}
}
