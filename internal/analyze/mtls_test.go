package analyze

import (
	"strings"
	"testing"
)

func peerAuth(ns, name, body string) string {
	return "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n" + body
}

func destRule(ns, name, host, trafficPolicy string) string {
	return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n  host: " + host + "\n  trafficPolicy:\n" + trafficPolicy
}

func cartWorkload(ports ...string) string {
	return "apiVersion: palisade.dev/v1alpha1\nkind: Workload\nmetadata: {name: cart, namespace: shop, labels: {app: cart}}\nspec:\n  command: ./cart\n  ports: [" + strings.Join(ports, ", ") + "]"
}

const (
	meshStrict     = "  mtls: {mode: STRICT}"
	nsPermissive   = "  mtls: {mode: PERMISSIVE}"
	tlsDisable     = "    tls: {mode: DISABLE}"
	cartHost       = "cart.shop.svc.cluster.local"
	port8080       = "{number: 8080}"
	port9090       = "{number: 9090}"
	conflictWithNS = "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication shop/default"
)

// PAL0002 resolves each workload's mode the way the data plane does.
func TestMTLSConflicts(t *testing.T) {
	mesh := peerAuth("istio-system", "default", meshStrict)
	tests := []struct {
		name string
		docs []string
		want string
	}{
		{"namespace PERMISSIVE under mesh STRICT: no conflict", []string{mesh, peerAuth("shop", "default", nsPermissive), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080)}, ""},
		{"namespace PERMISSIVE under mesh STRICT, no workload declared: no conflict", []string{mesh, peerAuth("shop", "default", nsPermissive), destRule("shop", "plain", cartHost, tlsDisable)}, ""},
		{"mesh STRICT: conflict", []string{mesh, destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080)}, "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication istio-system/default"},
		{"namespace STRICT, short host: conflict", []string{peerAuth("shop", "default", meshStrict), destRule("shop", "plain", "cart", tlsDisable), cartWorkload(port8080)}, conflictWithNS},
		{"mesh STRICT, no workload declared: conflict at namespace level", []string{mesh, destRule("shop", "plain", cartHost, tlsDisable)}, "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication istio-system/default"},
		{"workload STRICT over namespace PERMISSIVE: conflict", []string{mesh, peerAuth("shop", "default", nsPermissive), peerAuth("shop", "cart", "  selector: {matchLabels: {app: cart}}\n"+meshStrict), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080)}, "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication shop/cart"},
		{"workload PERMISSIVE over namespace STRICT: no conflict", []string{peerAuth("shop", "default", meshStrict), peerAuth("shop", "cart", "  selector: {matchLabels: {app: cart}}\n"+nsPermissive), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080)}, ""},
		{"workload selector for another app: conflict", []string{peerAuth("shop", "default", meshStrict), peerAuth("shop", "other", "  selector: {matchLabels: {app: other}}\n"+nsPermissive), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080)}, conflictWithNS},
		{"port-level DISABLE resolves it", []string{mesh, peerAuth("shop", "cart", "  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    8080: {mode: DISABLE}"), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080)}, ""},
		{"port-level DISABLE on one port of two", []string{mesh, peerAuth("shop", "cart", "  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    8080: {mode: DISABLE}"), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080, port9090)}, "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication istio-system/default"},
		{"DR portLevelSettings DISABLE on a port the workload lacks", []string{mesh, destRule("shop", "plain", cartHost, "    portLevelSettings:\n    - port: {number: 9090}\n      tls: {mode: DISABLE}"), cartWorkload(port8080)}, ""},
		{"DR portLevelSettings DISABLE on a STRICT port", []string{mesh, destRule("shop", "plain", cartHost, "    portLevelSettings:\n    - port: {number: 9090}\n      tls: {mode: DISABLE}"), cartWorkload(port8080, port9090)}, "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication istio-system/default"},
		{"DR portLevelSettings ISTIO_MUTUAL over DISABLE", []string{mesh, destRule("shop", "plain", cartHost, tlsDisable+"\n    portLevelSettings:\n    - port: {number: 8080}\n      tls: {mode: ISTIO_MUTUAL}"), cartWorkload(port8080)}, ""},
		{"DR portLevelSettings DISABLE where the port is DISABLE", []string{mesh, peerAuth("shop", "cart", "  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    9090: {mode: DISABLE}"), destRule("shop", "plain", cartHost, "    portLevelSettings:\n    - port: {number: 9090}\n      tls: {mode: DISABLE}"), cartWorkload(port8080, port9090)}, ""},
		{"wildcard DR shadowed by an exact one", []string{mesh, destRule("shop", "plain", "'*.shop.svc.cluster.local'", tlsDisable), destRule("shop", "cart", cartHost, "    tls: {mode: ISTIO_MUTUAL}"), cartWorkload(port8080)}, ""},
		{"wildcard DR: conflict", []string{mesh, destRule("shop", "plain", "'*.shop.svc.cluster.local'", tlsDisable), cartWorkload(port8080)}, "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication istio-system/default"},
		{"STRICT in another namespace: no conflict", []string{peerAuth("other", "default", meshStrict), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080)}, ""},
		{"host outside the mesh: no conflict", []string{mesh, destRule("shop", "plain", "api.example.com", tlsDisable)}, ""},
		{"no workload declared, a workload policy may decide: no conflict", []string{mesh, peerAuth("shop", "cart", "  selector: {matchLabels: {app: cart}}\n"+nsPermissive), destRule("shop", "plain", cartHost, tlsDisable)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fs []Finding
			for _, f := range Run(snapshot(t, "", tc.docs...)) {
				if f.Code == CodeMTLSConflict {
					fs = append(fs, f)
				}
			}
			if got := codes(fs); got != tc.want {
				t.Errorf("findings = %q, want %q\n%v", got, tc.want, fs)
			}
		})
	}
}

func TestMTLSConflictMessage(t *testing.T) {
	fs := Run(snapshot(t, "", peerAuth("istio-system", "default", meshStrict), destRule("shop", "plain", cartHost, tlsDisable), cartWorkload(port8080, port9090)))
	if len(fs) != 1 {
		t.Fatalf("findings = %v", fs)
	}
	const want = `in.yaml:7: DestinationRule for host "cart.shop.svc.cluster.local" disables TLS toward workload shop/cart port 8080, workload shop/cart port 9090, but PeerAuthentication istio-system/default (in.yaml:1) makes it STRICT there: those requests will be refused`
	if fs[0].Message != want {
		t.Errorf("message =\n%s\nwant\n%s", fs[0].Message, want)
	}
	if strings.Contains(fs[0].Message, "PeerAuthentication PeerAuthentication") {
		t.Errorf("kind repeated: %s", fs[0].Message)
	}
}
