package proxy_test

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"testing"
	"time"

	"palisade.dev/palisade/internal/dnsproxy"
)

const dnsServiceEntry = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: workshop}
spec:
  hosts: [api.payments.example]
  addresses: [192.0.2.40]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
`

// The sidecar's DNS proxy answers from the config the control plane
// pushed: a workload's service by its VIP under every name Kubernetes
// gives it, a ServiceEntry host by its addresses; Go's own resolver asks.
func TestDNSProxyAnswersFromThePushedRegistry(t *testing.T) {
	m := newTestMesh(t)
	m.write("se.yaml", dnsServiceEntry)
	m.reload()
	m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, false)
	store := m.stores["frontend"]
	s, err := dnsproxy.Start(dnsproxy.Config{Listen: "127.0.0.1:0", Names: func() dnsproxy.Names {
		if c := store.Current(); c != nil {
			return c
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.Addr())
	}}
	vip, _ := store.Current().LookupHost("productcatalog.workshop.svc.cluster.local")
	if len(vip) != 1 || !vip[0].Is4() {
		t.Fatalf("productcatalog has VIPs %v, want one IPv4", vip)
	}
	for host, want := range map[string][]string{
		"productcatalog.":                            {vip[0].String()},
		"productcatalog.workshop.":                   {vip[0].String()},
		"productcatalog.workshop.svc.cluster.local.": {vip[0].String()},
		"api.payments.example.":                      {"192.0.2.40"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := r.LookupHost(ctx, host)
		cancel()
		sort.Strings(got)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("LookupHost(%s) = %v %v, want %v", host, got, err, want)
		}
	}
	// The VIP captures to the service: the outbound capture's lookup.
	if u, _ := store.Current().LookupAddr(netip.AddrPortFrom(vip[0], 5000)); u == nil || u.Service != "workshop/productcatalog" {
		t.Errorf("VIP %s:5000 maps to %v", vip[0], u)
	}
}
