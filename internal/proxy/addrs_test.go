package proxy

import (
	"net/netip"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/xds"
)

// The captured destinations and DNS names a compiled config knows: VIPs
// and CIDRs from ServiceEntry addresses, endpoints by their own
// address, short names only in the proxy's own namespace.
func TestLookupAddrAndHost(t *testing.T) {
	se := func(hosts []string, addrs []string, port uint32, endpoints ...string) *networkingv1alpha3.ServiceEntry {
		s := &networkingv1alpha3.ServiceEntry{Hosts: hosts, Addresses: addrs, Resolution: networkingv1alpha3.ServiceEntry_STATIC,
			Ports: []*networkingv1alpha3.ServicePort{{Number: port, Name: "http"}}}
		for _, e := range endpoints {
			s.Endpoints = append(s.Endpoints, &networkingv1alpha3.WorkloadEntry{Address: e})
		}
		return s
	}
	res := Resources{xds.TypeServiceEntry: map[string]proto.Message{
		"workshop/productcatalog": se([]string{"productcatalog.workshop.svc.cluster.local", "productcatalog.workshop", "productcatalog"},
			[]string{"240.240.12.7"}, 5000, "10.250.0.7", "10.250.0.8"),
		"books/reviews":   se([]string{"reviews.books.svc.cluster.local", "reviews.books", "reviews"}, []string{"240.240.1.1"}, 9080, "10.250.1.1"),
		"workshop/legacy": se([]string{"legacy.corp.example"}, []string{"192.168.50.0/24"}, 3306),
		"workshop/wide":   se([]string{"wide.corp.example"}, []string{"192.168.0.0/16"}, 3306),
		"workshop/v6":     se([]string{"api.v6.example"}, []string{"2001:db8::7"}, 443),
		"workshop/noaddr": se([]string{"*.wild.example"}, nil, 80, "10.250.9.9"),
	}}
	cc := &Compiler{Self: Self{Ref: config.WorkloadRef{Namespace: "workshop", Name: "frontend"}}}
	c, err := cc.Compile(res)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(tests []struct {
		dst, service, pin string
	}) {
		t.Helper()
		for _, tt := range tests {
			u, pin := c.LookupAddr(netip.MustParseAddrPort(tt.dst))
			got := ""
			if u != nil {
				got = u.Service
			}
			if got != tt.service || pin != tt.pin {
				t.Errorf("LookupAddr(%s) = %q pin %q, want %q pin %q", tt.dst, got, pin, tt.service, tt.pin)
			}
		}
	}
	addr([]struct{ dst, service, pin string }{
		{"240.240.12.7:5000", "workshop/productcatalog", ""},
		{"240.240.12.7:5001", "", ""}, // a port the service does not have
		{"10.250.0.8:5000", "workshop/productcatalog", "10.250.0.8:5000"},
		{"10.250.1.1:9080", "books/reviews", "10.250.1.1:9080"},
		{"192.168.50.3:3306", "workshop/legacy", ""}, // the narrower CIDR wins
		{"192.168.7.3:3306", "workshop/wide", ""},
		{"[2001:db8::7]:443", "workshop/v6", ""},
		{"[::ffff:240.240.12.7]:5000", "workshop/productcatalog", ""}, // v4-mapped, as a dual-stack socket reports it
		{"10.250.9.9:80", "workshop/noaddr", "10.250.9.9:80"},
		{"203.0.113.1:80", "", ""},
	})
	for _, tt := range []struct {
		host    string
		port    uint32
		service string
	}{
		{"a.wild.example", 80, "workshop/noaddr"},
		{"deep.a.wild.example", 80, "workshop/noaddr"},
		{"wild.example", 80, ""},
		{"a.wild.example", 443, ""},
		{"API.V6.example.", 443, "workshop/v6"},
		{"", 80, ""},
	} {
		got := ""
		if u := c.LookupWildcard(tt.host, tt.port); u != nil {
			got = u.Service
		}
		if got != tt.service {
			t.Errorf("LookupWildcard(%s, %d) = %q, want %q", tt.host, tt.port, got, tt.service)
		}
	}
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"productcatalog", []string{"240.240.12.7"}},
		{"productcatalog.workshop", []string{"240.240.12.7"}},
		{"reviews.books", []string{"240.240.1.1"}},
		{"reviews", nil}, // another namespace's short name
		{"legacy.corp.example", nil},
		{"api.v6.example", []string{"2001:db8::7"}},
		{"x.wild.example", nil},
	} {
		ips, ok := c.LookupHost(tt.name)
		var got []string
		for _, ip := range ips {
			got = append(got, ip.String())
		}
		if !reflect.DeepEqual(got, tt.want) || ok != (tt.want != nil) {
			t.Errorf("LookupHost(%s) = %v %v, want %v", tt.name, got, ok, tt.want)
		}
	}
}
