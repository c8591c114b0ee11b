package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

type table map[string][]netip.Addr

func (t table) LookupHost(name string) ([]netip.Addr, bool) {
	ips, ok := t[name]
	return ips, ok
}

var meshNames = table{
	"productcatalog.workshop.svc.cluster.local": {netip.MustParseAddr("240.240.12.7")},
	"productcatalog.workshop.svc":               {netip.MustParseAddr("240.240.12.7")},
	"productcatalog.workshop":                   {netip.MustParseAddr("240.240.12.7")},
	"productcatalog":                            {netip.MustParseAddr("240.240.12.7")},
	"api.payments.example":                      {netip.MustParseAddr("240.240.3.1"), netip.MustParseAddr("2001:db8::5")},
}

// upstream is a real DNS server on loopback standing for the resolver
// of /etc/resolv.conf: it knows example.org and counts what it was asked.
type upstream struct {
	addr string
	mu   sync.Mutex
	asks []string
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.mu.Lock()
		u.asks = append(u.asks, r.Question[0].Name+" "+dns.TypeToString[r.Question[0].Qtype]+" "+w.RemoteAddr().Network())
		u.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "example.org." && r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 10)})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go srv.ActivateAndServe() //nolint:errcheck // ends with Shutdown
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

func (u *upstream) asked() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.asks...)
}

func startProxy(t *testing.T, names Names, upstreams ...string) *Server {
	t.Helper()
	s, err := Start(Config{Listen: "127.0.0.1:0", Upstreams: upstreams, Search: []string{"workshop.svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Names: func() Names { return names }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Go's own stub resolver, over UDP and over TCP, asks the proxy.
func resolver(addr, network string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func TestMeshNamesWithARealResolver(t *testing.T) {
	up := startUpstream(t)
	s := startProxy(t, meshNames, up.addr)
	for _, network := range []string{"udp", "tcp"} {
		r := resolver(s.Addr(), network)
		for _, tc := range []struct {
			host string
			want []string
		}{
			{"productcatalog.workshop.svc.cluster.local.", []string{"240.240.12.7"}},
			{"productcatalog.workshop.", []string{"240.240.12.7"}},
			{"api.payments.example.", []string{"2001:db8::5", "240.240.3.1"}},
			{"example.org.", []string{"192.0.2.10"}},
		} {
			t.Run(network+" "+tc.host, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := r.LookupHost(ctx, tc.host)
				if err != nil {
					t.Fatal(err)
				}
				sort.Strings(got)
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("LookupHost(%s) = %v, want %v", tc.host, got, tc.want)
				}
			})
		}
	}
	// Mesh names never reach the upstream, AAAA for a v4-only mesh name
	// included; example.org did, over the network it was asked by.
	for _, a := range up.asked() {
		if a != "example.org. A udp" && a != "example.org. AAAA udp" && a != "example.org. A tcp" && a != "example.org. AAAA tcp" {
			t.Errorf("upstream was asked %q", a)
		}
	}
	if n := len(up.asked()); n == 0 {
		t.Error("example.org was never forwarded")
	}
}

func exchange(t *testing.T, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestAnswers(t *testing.T) {
	up := startUpstream(t)
	s := startProxy(t, meshNames, up.addr)
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
	}{
		{name: "short name", qname: "productcatalog", qtype: dns.TypeA, answer: []string{"productcatalog.\t30\tIN\tA\t240.240.12.7"}},
		{name: "case does not matter", qname: "ProductCatalog.Workshop.SVC.cluster.local", qtype: dns.TypeA, answer: []string{"ProductCatalog.Workshop.SVC.cluster.local.\t30\tIN\tA\t240.240.12.7"}},
		{name: "search domain appended to a short name", qname: "productcatalog.workshop.svc.cluster.local.workshop.svc.cluster.local", qtype: dns.TypeA,
			answer: []string{"productcatalog.workshop.svc.cluster.local.workshop.svc.cluster.local.\t30\tIN\tCNAME\tproductcatalog.workshop.svc.cluster.local.", "productcatalog.workshop.svc.cluster.local.\t30\tIN\tA\t240.240.12.7"}},
		{name: "search domain appended to name.namespace", qname: "productcatalog.workshop.workshop.svc.cluster.local", qtype: dns.TypeA,
			answer: []string{"productcatalog.workshop.workshop.svc.cluster.local.\t30\tIN\tCNAME\tproductcatalog.workshop.", "productcatalog.workshop.\t30\tIN\tA\t240.240.12.7"}},
		{name: "ServiceEntry host AAAA", qname: "api.payments.example", qtype: dns.TypeAAAA, answer: []string{"api.payments.example.\t30\tIN\tAAAA\t2001:db8::5"}},
		{name: "v4-only mesh name AAAA is NODATA, not forwarded", qname: "productcatalog.workshop", qtype: dns.TypeAAAA},
		{name: "unknown name forwarded", qname: "example.org", qtype: dns.TypeA, answer: []string{"example.org.\t60\tIN\tA\t192.0.2.10"}},
		{name: "unknown mesh-like name forwarded", qname: "cart.workshop.svc.cluster.local", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "other type of a mesh name forwarded", qname: "productcatalog.workshop", qtype: dns.TypeMX, rcode: dns.RcodeNameError},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+" "+tc.name, func(t *testing.T) {
				resp := exchange(t, s.Addr(), network, tc.qname, tc.qtype)
				if resp.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
				}
				var got []string
				for _, rr := range resp.Answer {
					got = append(got, rr.String())
				}
				if !reflect.DeepEqual(got, tc.answer) {
					t.Errorf("answer %q, want %q", got, tc.answer)
				}
			})
		}
	}
	if got := up.asked(); len(got) != 6 {
		t.Errorf("upstream asked %q, want the 3 non-mesh queries over each network", got)
	}
}

// Before the first config, and with no upstream that answers, names
// get SERVFAIL rather than a made-up NXDOMAIN.
func TestNoConfigNoUpstream(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	s, err := Start(Config{Listen: "127.0.0.1:0", Upstreams: []string{deadAddr}, Timeout: 200 * time.Millisecond, Names: func() Names { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if resp := exchange(t, s.Addr(), "udp", "productcatalog.workshop", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
}

func TestStartRefusesBadUpstreams(t *testing.T) {
	if _, err := Start(Config{Listen: "127.0.0.1:0", Upstreams: []string{"10.0.0.1"}}); err == nil {
		t.Error("an upstream without a port was accepted")
	}
}

func TestReadResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	body := "nameserver 10.96.0.10\nnameserver fd00::a\nsearch workshop.svc.cluster.local svc.cluster.local cluster.local.\noptions ndots:5\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	servers, search, err := ReadResolvConf(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.96.0.10:53", "[fd00::a]:53"}; !reflect.DeepEqual(servers, want) {
		t.Errorf("servers %v, want %v", servers, want)
	}
	if want := []string{"workshop.svc.cluster.local", "svc.cluster.local", "cluster.local"}; !reflect.DeepEqual(search, want) {
		t.Errorf("search %v, want %v", search, want)
	}
	if _, _, err := ReadResolvConf(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was read")
	}
}
