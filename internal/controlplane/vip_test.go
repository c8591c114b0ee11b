package controlplane

import (
	"net/netip"
	"strings"
	"testing"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/config"
)

func svc(ns, name string, addrs ...string) *Service {
	return &Service{Namespace: ns, Name: name, Spec: &networkingv1alpha3.ServiceEntry{
		Hosts: Hosts(name, ns), Addresses: addrs, Resolution: networkingv1alpha3.ServiceEntry_STATIC,
	}}
}

func vipOf(t *testing.T, s *Service) netip.Addr {
	t.Helper()
	if n := len(s.Spec.GetAddresses()); n != 1 {
		t.Fatalf("%s/%s: %d addresses, want 1", s.Namespace, s.Name, n)
	}
	return netip.MustParseAddr(s.Spec.GetAddresses()[0])
}

// A service's VIP depends on its host only: adding other services, or
// listing them in another order, leaves it where it was.
func TestAssignVIPsStable(t *testing.T) {
	first := []*Service{svc("workshop", "productcatalog"), svc("workshop", "frontend")}
	if err := AssignVIPs(first, DefaultVIPRange); err != nil {
		t.Fatal(err)
	}
	second := []*Service{svc("workshop", "cart"), svc("workshop", "frontend"), svc("other", "x"), svc("workshop", "productcatalog")}
	if err := AssignVIPs(second, DefaultVIPRange); err != nil {
		t.Fatal(err)
	}
	if a, b := vipOf(t, first[0]), vipOf(t, second[3]); a != b {
		t.Errorf("productcatalog VIP %s, then %s", a, b)
	}
	if a, b := vipOf(t, first[1]), vipOf(t, second[1]); a != b {
		t.Errorf("frontend VIP %s, then %s", a, b)
	}
	seen := map[netip.Addr]string{}
	for _, s := range second {
		ip := vipOf(t, s)
		if !DefaultVIPRange.Contains(ip) || ip == DefaultVIPRange.Addr() || ip == netip.MustParseAddr("240.240.255.255") {
			t.Errorf("%s: VIP %s outside the usable range %s", s.Name, ip, DefaultVIPRange)
		}
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s share VIP %s", s.Name, other, ip)
		}
		seen[ip] = s.Name
	}
}

// A range of two usable addresses forces collisions: each service still
// gets its own, a third is refused with the range named, and addresses a
// service brings (a ClusterIP) are kept and never handed out.
func TestAssignVIPsCollisionsAndOwnAddresses(t *testing.T) {
	r := netip.MustParsePrefix("10.99.0.0/30") // .1 and .2 usable
	own := svc("ns", "kube", "10.99.0.1")
	list := []*Service{own, svc("ns", "a")}
	if err := AssignVIPs(list, r); err != nil {
		t.Fatal(err)
	}
	if got := vipOf(t, own).String(); got != "10.99.0.1" {
		t.Errorf("own address became %s", got)
	}
	if got := vipOf(t, list[1]).String(); got != "10.99.0.2" {
		t.Errorf("a got %s, want the one free address 10.99.0.2", got)
	}
	err := AssignVIPs([]*Service{svc("ns", "a"), svc("ns", "b"), svc("ns", "c")}, r)
	if err == nil || !strings.Contains(err.Error(), "10.99.0.0/30") {
		t.Errorf("err = %v, want the full range named", err)
	}
}

// User ServiceEntries: a wildcard host or resolution NONE gets no VIP,
// and the snapshot's own spec is never written to.
func TestAssignVIPsSkipsAndClones(t *testing.T) {
	wild := &Service{Namespace: "ns", Name: "wild", Spec: &networkingv1alpha3.ServiceEntry{Hosts: []string{"*.example.com"}, Resolution: networkingv1alpha3.ServiceEntry_DNS}}
	none := &Service{Namespace: "ns", Name: "none", Spec: &networkingv1alpha3.ServiceEntry{Hosts: []string{"none.example.com"}}}
	spec := &networkingv1alpha3.ServiceEntry{Hosts: []string{"api.example.com"}, Resolution: networkingv1alpha3.ServiceEntry_DNS}
	ext := &Service{Namespace: "ns", Name: "ext", Spec: spec}
	if err := AssignVIPs([]*Service{wild, none, ext}, DefaultVIPRange); err != nil {
		t.Fatal(err)
	}
	if len(wild.Spec.GetAddresses())+len(none.Spec.GetAddresses()) != 0 {
		t.Errorf("wildcard %v, NONE %v: want no VIPs", wild.Spec.GetAddresses(), none.Spec.GetAddresses())
	}
	vipOf(t, ext)
	if len(spec.GetAddresses()) != 0 {
		t.Errorf("the original spec was changed: %v", spec.GetAddresses())
	}
}

// A Workload with an address is reached at <address>:<service port>,
// once its sidecar has announced the port.
func TestBuildServicesCapturedAddress(t *testing.T) {
	snap := loadSnapshot(t, map[string]string{"w.yaml": `
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: productcatalog, namespace: workshop, labels: {app: productcatalog}}
spec:
  command: x
  address: 10.250.0.7
  ports: [{name: http, number: 5000}, {name: grpc, number: 5001}]
`})
	ws := ConfigRegistry{}.Workloads(snap)
	if len(ws) != 1 || ws[0].Address != "10.250.0.7" {
		t.Fatalf("workloads %+v", ws)
	}
	ws[0].Inbound = map[uint32]string{5000: "0.0.0.0:15006"}
	services := BuildServices(snap, ws)
	if err := AssignVIPs(services, DefaultVIPRange); err != nil {
		t.Fatal(err)
	}
	se := services[0].Spec
	if n := len(se.GetEndpoints()); n != 1 {
		t.Fatalf("%d endpoints, want 1 (only the announced port)", n)
	}
	if e := se.GetEndpoints()[0]; e.GetAddress() != "10.250.0.7" || e.GetPorts()["http"] != 5000 {
		t.Errorf("endpoint %s %v, want 10.250.0.7 http:5000", e.GetAddress(), e.GetPorts())
	}
	vipOf(t, services[0])
}

// clusterIPs is a registry that knows one service's own address, as a
// Kubernetes registry knows a Service's ClusterIP.
type clusterIPs struct{ ConfigRegistry }

func (clusterIPs) ServiceAddresses(*config.Snapshot) map[ServiceKey][]string {
	return map[ServiceKey][]string{{Namespace: "workshop", Name: "productcatalog"}: {"10.96.14.2"}}
}

// The push carries a registry's own service address instead of a VIP,
// and VIPs for the rest.
func TestPushUsesRegistryServiceAddresses(t *testing.T) {
	snap := loadSnapshot(t, map[string]string{"w.yaml": `
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: productcatalog, namespace: workshop}
spec: {command: x, ports: [{number: 5000}]}
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: frontend, namespace: workshop}
spec: {command: x, ports: [{number: 9000}]}
`})
	s := NewServer(discardLog(), clusterIPs{}, nil)
	if err := s.SetSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, svc := range s.input.Load().in.Services {
		got[svc.Name] = svc.Spec.GetAddresses()
	}
	if a := got["productcatalog"]; len(a) != 1 || a[0] != "10.96.14.2" {
		t.Errorf("productcatalog addresses %v, want its ClusterIP", a)
	}
	if a := got["frontend"]; len(a) != 1 || !DefaultVIPRange.Contains(netip.MustParseAddr(a[0])) {
		t.Errorf("frontend addresses %v, want a VIP in %s", a, DefaultVIPRange)
	}
	if err := s.SetVIPRange(netip.MustParsePrefix("10.99.0.0/31")); err == nil {
		t.Error("a range with no usable address was accepted")
	}
	if a := s.input.Load().in.Services; len(a) == 0 {
		t.Error("the refused range left no services")
	}
}
