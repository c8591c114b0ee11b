//go:build linux

package proxy_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"palisade.dev/palisade/internal/proxy"
)

// The capture test runs in a network namespace of its own, made and
// removed here, with a veth pair for the mesh's addresses (both ends in
// the namespace: nothing sent there leaves it) and nat OUTPUT rules in
// the shape of Istio's: the proxy's uid (here root, the test's) is
// excluded, an app's uid is redirected to the outbound capture, and
// connections to the captured workload's address go to its inbound
// capture, as its own namespace's rules would send them.
const (
	netnsChildEnv = "PALISADE_CAPTURE_NETNS"
	appUID        = "1339" // an app in the captured workload "frontend"
	outsideUID    = "1340" // a plain client outside the mesh
	catalogAddr   = "10.251.0.9"
	outsideAddr   = "10.251.0.1" // a server outside the mesh
	outsideAddr6  = "fd00:251::1"
)

var captureRules = [][]string{
	{"-t", "nat", "-A", "OUTPUT", "-s", "127.0.0.6/32", "-o", "lo", "-j", "RETURN"},
	{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", catalogAddr, "-m", "owner", "--uid-owner", "0", "-j", "REDIRECT", "--to-ports", "15006"},
	{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", catalogAddr, "-m", "owner", "--uid-owner", outsideUID, "-j", "REDIRECT", "--to-ports", "15006"},
	{"-t", "nat", "-A", "OUTPUT", "-m", "owner", "--uid-owner", "0", "-j", "RETURN"},
	{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", appUID, "-j", "REDIRECT", "--to-ports", "15001"},
}

// captureRules6 capture the app's IPv6 connections the same way.
var captureRules6 = [][]string{
	{"-t", "nat", "-A", "OUTPUT", "-m", "owner", "--uid-owner", "0", "-j", "RETURN"},
	{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", appUID, "-j", "REDIRECT", "--to-ports", "15001"},
}

func TestCaptureInNetns(t *testing.T) {
	if os.Getenv(netnsChildEnv) != "" {
		captureChild(t)
		return
	}
	var missing []string
	for _, b := range []string{"ip", "iptables", "ip6tables", "curl", "setpriv", "bash"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if os.Geteuid() != 0 || len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("capture test needs root and %v (euid %d, missing %v)", []string{"ip", "iptables", "curl", "setpriv"}, os.Geteuid(), missing)
		}
		t.Skipf("needs root and ip, iptables, curl, setpriv (euid %d, missing %v)", os.Geteuid(), missing)
	}
	ns := captureNetns(t, captureRules, captureRules6)
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestCaptureInNetns$", "-test.v")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("the test in the namespace failed: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestCaptureInNetns")) {
		t.Fatal("the test in the namespace did not run")
	}
}

const captureWorkloads = `
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: frontend, namespace: workshop, labels: {app: frontend}}
spec:
  serviceAccount: frontend-sa
  command: x
  ports: [{name: http, number: 9000, protocol: HTTP}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: productcatalog, namespace: workshop, labels: {app: productcatalog}}
spec:
  serviceAccount: productcatalog-sa
  command: x
  address: ` + catalogAddr + `
  ports: [{name: http, number: 5000}, {name: tcp-raw, number: 7000, protocol: TCP}, {name: https, number: 8443}]
`

// as runs a command as uid in the namespace, with no proxy variables.
func as(uid string, name string, args ...string) (string, error) {
	cmd := exec.Command("setpriv", append([]string{"--reuid", uid, "--regid", uid, "--clear-groups", "--", name}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func curl(uid string, args ...string) (string, error) {
	return as(uid, "curl", append([]string{"-sS", "-m", "5"}, args...)...)
}

// tcpExchange sends payload over TCP as uid and returns the first n
// bytes that come back.
func tcpExchange(uid, addr, payload string, n int) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	return as(uid, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s; printf %%s %q >&3; timeout 5 head -c %d <&3", host, port, payload, n))
}

func captureChild(t *testing.T) {
	m := newTestMesh(t)
	m.write("workloads.yaml", captureWorkloads)
	m.write("pa.yaml", strictMesh)
	m.reload()

	// The app's own HTTPS on 8443: a certificate no mesh sidecar holds.
	appCert := m.ca.issue(t, "spiffe://example.org/app-own-cert")
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*appCert}})
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app's own TLS") })}
	go tlsSrv.Serve(tlsLn) //nolint:errcheck
	t.Cleanup(func() { tlsSrv.Close() })

	m.sidecarWith("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID), m.ca.issue(t, catalogID), proxy.Options{
		Inbound: []proxy.InboundPort{
			{Port: 5000, Name: "http", App: app(t)},
			{Port: 7000, Name: "tcp-raw", Protocol: proxy.ProtoTCP, App: dualApp(t)},
			{Port: 8443, Name: "https", App: tlsLn.Addr().String()},
		},
		CaptureInbound: "0.0.0.0:15006",
	}, nil)
	m.sidecarWith("frontend", "frontend-sa", m.ca.issue(t, frontendID), m.ca.issue(t, frontendID), proxy.Options{CaptureOutbound: "[::]:15001"}, nil)

	// A server outside the mesh, for outboundTrafficPolicy.
	outsideSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "outside the mesh") })}
	t.Cleanup(func() { outsideSrv.Close() })
	for _, a := range []string{outsideAddr, outsideAddr6} {
		outside, err := net.Listen("tcp", net.JoinHostPort(a, "7070"))
		if err != nil {
			t.Fatal(err)
		}
		go outsideSrv.Serve(outside) //nolint:errcheck
	}
	outsideTLS, err := tls.Listen("tcp", outsideAddr+":7443", &tls.Config{Certificates: []tls.Certificate{*appCert}})
	if err != nil {
		t.Fatal(err)
	}
	outsideTLSSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "outside over TLS") })}
	go outsideTLSSrv.Serve(outsideTLS) //nolint:errcheck
	t.Cleanup(func() { outsideTLSSrv.Close() })

	var vip string
	eventually(t, "frontend learns productcatalog's VIP and endpoints", func() error {
		cfg := m.stores["frontend"].Current()
		ips, ok := cfg.LookupHost("productcatalog.workshop.svc.cluster.local")
		if !ok || len(ips) != 1 {
			return fmt.Errorf("productcatalog addresses %v", ips)
		}
		vip = ips[0].String()
		if u, _ := cfg.LookupAddr(netipAddrPort(t, vip, 5000)); u == nil || len(u.Endpoints) == 0 {
			return fmt.Errorf("VIP %s: no upstream with endpoints", vip)
		}
		return nil
	})
	t.Logf("productcatalog VIP %s", vip)

	t.Run("HTTP to the VIP goes over mTLS", func(t *testing.T) {
		out, err := curl(appUID, "http://"+vip+":5000/items?x=1")
		if err != nil || !strings.HasPrefix(out, "path=/items?x=1") || !strings.Contains(out, "URI="+frontendID) {
			t.Fatalf("curl: %v %q", err, out)
		}
		eventually(t, "access logs", func() error {
			if l := m.logs["frontend"].String(); !strings.Contains(l, `"upstream_peer_principal":"`+catalogID) && !strings.Contains(l, catalogID) {
				return fmt.Errorf("frontend log without %s: %s", catalogID, l)
			}
			if l := m.logs["productcatalog"].String(); !strings.Contains(l, frontendID) {
				return fmt.Errorf("productcatalog log without %s: %s", frontendID, l)
			}
			return nil
		})
	})
	t.Run("HTTP/2 with prior knowledge to the VIP", func(t *testing.T) {
		out, err := curl(appUID, "--http2-prior-knowledge", "-w", " %{http_version}", "http://"+vip+":5000/h2")
		if err != nil || !strings.HasPrefix(out, "path=/h2") || !strings.HasSuffix(out, " 2") || !strings.Contains(out, "URI="+frontendID) {
			t.Fatalf("curl: %v %q", err, out)
		}
	})
	t.Run("HTTP to the endpoint's own address", func(t *testing.T) {
		out, err := curl(appUID, "http://"+catalogAddr+":5000/direct")
		if err != nil || !strings.HasPrefix(out, "path=/direct") || !strings.Contains(out, "URI="+frontendID) {
			t.Fatalf("curl: %v %q", err, out)
		}
	})
	t.Run("opaque TCP to the VIP", func(t *testing.T) {
		out, err := tcpExchange(appUID, vip+":7000", "ping", 4)
		if err != nil || out != "ping" {
			t.Fatalf("echo: %v %q", err, out)
		}
	})
	t.Run("the app's own TLS passes through end to end", func(t *testing.T) {
		// curl pins the app's own public key: the handshake is the
		// app's, carried through both sidecars, not one a sidecar made.
		leaf, err := x509.ParseCertificate(appCert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		pin := "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
		out, err := curl(appUID, "-k", "--pinnedpubkey", pin, "https://"+vip+":8443/")
		if err != nil || out != "app's own TLS" {
			t.Fatalf("curl: %v %q", err, out)
		}
		other := sha256.Sum256([]byte("another key"))
		if out, err := curl(appUID, "-k", "--pinnedpubkey", "sha256//"+base64.StdEncoding.EncodeToString(other[:]), "https://"+vip+":8443/"); err == nil {
			t.Fatalf("curl accepted a key that is not the app's: %q", out)
		}
	})
	t.Run("a plain client outside the mesh is reset by STRICT", func(t *testing.T) {
		out, err := curl(outsideUID, "http://"+catalogAddr+":5000/")
		if err == nil || !strings.Contains(strings.ToLower(out), "reset") {
			t.Fatalf("curl: %v %q, want a reset", err, out)
		}
	})
	t.Run("ALLOW_ANY passes a destination outside the mesh", func(t *testing.T) {
		out, err := curl(appUID, "http://"+outsideAddr+":7070/")
		if err != nil || out != "outside the mesh" {
			t.Fatalf("curl: %v %q", err, out)
		}
		// IPv6: the original destination from IP6T_SO_ORIGINAL_DST.
		out, err = curl(appUID, "-g", "http://["+outsideAddr6+"]:7070/")
		if err != nil || out != "outside the mesh" {
			t.Fatalf("curl over IPv6: %v %q", err, out)
		}
		eventually(t, "PassthroughCluster in the log", func() error {
			if l := m.logs["frontend"].String(); !strings.Contains(l, `"upstream_host":"[`+outsideAddr6+`]:7070","upstream_cluster":"`+proxy.PassthroughCluster) {
				return fmt.Errorf("no %s in %s", proxy.PassthroughCluster, l)
			}
			return nil
		})
	})
	t.Run("REGISTRY_ONLY refuses it", func(t *testing.T) {
		m.write("mesh.yaml", "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n")
		m.write("corp.yaml", `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: corp, namespace: workshop}
spec:
  hosts: ["*.corp.example"]
  location: MESH_EXTERNAL
  ports: [{number: 7070, name: http, protocol: HTTP}, {number: 7443, name: tls, protocol: TLS}]
  resolution: NONE
`)
		m.reload()
		eventually(t, "REGISTRY_ONLY reaches frontend", func() error {
			if p := m.stores["frontend"].Current().Mesh.GetOutboundTrafficPolicy(); p == nil || p.GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
				return fmt.Errorf("mesh config %v", m.stores["frontend"].Current().Mesh)
			}
			return nil
		})
		out, err := curl(appUID, "-o", "/dev/null", "-w", "%{http_code}", "http://"+outsideAddr+":7070/")
		if err != nil || out != "502" {
			t.Fatalf("curl: %v %q, want 502", err, out)
		}
		if out, _ := tcpExchange(appUID, outsideAddr+":7070", "hello", 5); out != "" {
			t.Errorf("opaque TCP got %q through REGISTRY_ONLY", out)
		}
		if l := m.logs["frontend"].String(); !strings.Contains(l, proxy.BlackHoleCluster) {
			t.Errorf("no %s in %s", proxy.BlackHoleCluster, l)
		}
		// A ServiceEntry admits its hosts: by Host for HTTP, by SNI for
		// TLS, to the original destination (resolution NONE).
		if out, err := curl(appUID, "-H", "Host: api.corp.example", "http://"+outsideAddr+":7070/"); err != nil || out != "outside the mesh" {
			t.Errorf("HTTP admitted by a ServiceEntry: %v %q", err, out)
		}
		if out, err := curl(appUID, "-k", "--resolve", "api.corp.example:7443:"+outsideAddr, "https://api.corp.example:7443/"); err != nil || out != "outside over TLS" {
			t.Errorf("TLS admitted by a ServiceEntry: %v %q", err, out)
		}
		if out, err := curl(appUID, "-k", "--resolve", "api.other.example:7443:"+outsideAddr, "https://api.other.example:7443/"); err == nil {
			t.Errorf("TLS to a host no ServiceEntry admits got through: %q", out)
		}
		if l := m.logs["frontend"].String(); !strings.Contains(l, `"upstream_cluster":"outbound|7443||*.corp.example"`) {
			t.Errorf("no ServiceEntry cluster in %s", l)
		}
		// The mesh itself still works.
		if out, err := curl(appUID, "http://"+vip+":5000/still"); err != nil || !strings.HasPrefix(out, "path=/still") {
			t.Errorf("mesh call under REGISTRY_ONLY: %v %q", err, out)
		}
	})
	t.Run("a port the workload does not declare goes to its original destination, never to loopback", func(t *testing.T) {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s from %s", r.Host, r.RemoteAddr[:strings.LastIndex(r.RemoteAddr, ":")])
		})}
		t.Cleanup(func() { srv.Close() })
		for _, a := range []string{catalogAddr + ":9999", "127.0.0.1:9998"} {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln) //nolint:errcheck
		}
		m.write("pa-catalog.yaml", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: catalog, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  mtls: {mode: PERMISSIVE}
`)
		m.reload()
		eventually(t, "PERMISSIVE reaches productcatalog", func() error {
			out, err := curl(outsideUID, "http://"+catalogAddr+":9999/")
			if err != nil || out != catalogAddr+":9999 from 127.0.0.6" {
				return fmt.Errorf("curl: %v %q", err, out)
			}
			return nil
		})
		if out, err := curl(outsideUID, "http://"+catalogAddr+":9998/"); err == nil {
			t.Errorf("a loopback-only listener was reached through the inbound capture: %q", out)
		}
	})
}

func netipAddrPort(t *testing.T, ip string, port uint16) netip.AddrPort {
	t.Helper()
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}
