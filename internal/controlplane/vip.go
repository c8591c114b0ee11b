package controlplane

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/big"
	"net/netip"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/config"
)

// DefaultVIPRange is where services without an address of their own get
// one: the range Istio auto-allocates ServiceEntry addresses from.
var DefaultVIPRange = netip.MustParsePrefix("240.240.0.0/16")

// AssignVIPs gives every service that has no address a virtual IP from
// r, written into its ServiceEntry's addresses, as Istio's address
// auto-allocation does. A service's VIP is a hash of its first host into
// r, so it stays the same across restarts and config changes; a
// collision takes the next free address, services taken in host order.
// Services with addresses of their own (a user's ServiceEntry
// addresses, a Kubernetes Service's ClusterIP), wildcard hosts and
// resolution NONE get none. A spec is cloned before it is changed.
func AssignVIPs(services []*Service, r netip.Prefix) error {
	r = r.Masked()
	if !r.IsValid() {
		return errors.New("controlplane: service VIP range is not set")
	}
	hostBits := r.Addr().BitLen() - r.Bits()
	if hostBits < 2 {
		return fmt.Errorf("controlplane: service VIP range %s is too small", r)
	}
	if hostBits > 32 {
		hostBits = 32
	}
	size := uint64(1)<<hostBits - 2 // neither the first nor the last address
	taken := map[netip.Addr]bool{}
	var todo []*Service
	for _, s := range services {
		if len(s.Spec.GetAddresses()) > 0 {
			for _, a := range s.Spec.GetAddresses() {
				if ip, err := netip.ParseAddr(a); err == nil {
					taken[ip] = true
				}
			}
			continue
		}
		if needsVIP(s.Spec) {
			todo = append(todo, s)
		}
	}
	if uint64(len(todo)+len(taken)) > size {
		return fmt.Errorf("controlplane: service VIP range %s holds %d addresses, %d services need one", r, size, len(todo))
	}
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].Spec.GetHosts()[0] < todo[j].Spec.GetHosts()[0] })
	base := new(big.Int).SetBytes(r.Addr().AsSlice())
	for _, s := range todo {
		h := fnv.New64a()
		h.Write([]byte(strings.ToLower(s.Spec.GetHosts()[0])))
		off := h.Sum64() % size
		for {
			ip := addrAt(base, r.Addr().Is4(), off+1)
			if !taken[ip] {
				taken[ip] = true
				s.Spec = proto.Clone(s.Spec).(*networkingv1alpha3.ServiceEntry)
				s.Spec.Addresses = []string{ip.String()}
				break
			}
			off = (off + 1) % size
		}
	}
	return nil
}

// ServiceKey names a service: its namespace and name.
type ServiceKey struct{ Namespace, Name string }

// ServiceAddresser is implemented by a Registry that knows services'
// own addresses (Kubernetes: a Service's ClusterIP). Those services
// keep them, and AssignVIPs gives them none.
type ServiceAddresser interface {
	ServiceAddresses(snap *config.Snapshot) map[ServiceKey][]string
}

// SetServiceAddresses writes addrs into the ServiceEntries of the
// services they name that have none of their own yet; a spec is cloned
// before it is changed.
func SetServiceAddresses(services []*Service, addrs map[ServiceKey][]string) {
	for _, s := range services {
		a, ok := addrs[ServiceKey{s.Namespace, s.Name}]
		if !ok || len(a) == 0 || len(s.Spec.GetAddresses()) > 0 {
			continue
		}
		s.Spec = proto.Clone(s.Spec).(*networkingv1alpha3.ServiceEntry)
		s.Spec.Addresses = append([]string(nil), a...)
	}
}

func needsVIP(se *networkingv1alpha3.ServiceEntry) bool {
	if len(se.GetHosts()) == 0 || se.GetResolution() == networkingv1alpha3.ServiceEntry_NONE {
		return false
	}
	for _, h := range se.GetHosts() {
		if strings.HasPrefix(h, "*") {
			return false
		}
	}
	return true
}

func addrAt(base *big.Int, is4 bool, off uint64) netip.Addr {
	n := new(big.Int).Add(base, new(big.Int).SetUint64(off))
	if is4 {
		var b [4]byte
		n.FillBytes(b[:])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	n.FillBytes(b[:])
	return netip.AddrFrom16(b)
}
