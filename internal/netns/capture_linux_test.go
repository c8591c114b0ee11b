package netns

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"palisade.dev/palisade/internal/capture"
	"palisade.dev/palisade/test/peers"
)

// originalDst reads SO_ORIGINAL_DST of a redirected connection.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		var mreq *unix.IPv6Mreq
		mreq, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if serr == nil {
			a := mreq.Multiaddr
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{a[4], a[5], a[6], a[7]}), uint16(a[2])<<8|uint16(a[3]))
		}
	})
	if err == nil {
		err = serr
	}
	return ap, err
}

// serveCaptured answers with name and the original destination.
func serveCaptured(t *testing.T, n Namespace, addr, name string) {
	t.Helper()
	ln, err := n.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dst, err := originalDst(c)
			if err != nil {
				fmt.Fprintf(c, "%s no-original-dst\n", name)
			} else {
				fmt.Fprintf(c, "%s %s\n", name, dst)
			}
			c.Close()
		}
	}()
}

// helloAs dials addr from inside n in a process of uid/gid id (this test
// binary, see TestMain) and returns the server's line.
func helloAs(t *testing.T, helper string, n Namespace, id uint32, addr string) string {
	t.Helper()
	cmd := exec.Command(helper, "-test.run=^$", addr)
	cmd.Env = append(os.Environ(), "PALISADE_NETNS_HELPER=dial")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id}}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, io.Discard
	if err := n.Start(cmd); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // the output says what happened
	return strings.TrimSpace(out.String())
}

// helperBinary copies the test binary where any uid can run it: the go
// tool builds it in a directory only root may enter.
func helperBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "palisade-netns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "helper")
	if err := os.WriteFile(p, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCaptureRules: Istio's default rules in two workload namespaces
// send the app's outbound to its proxy's 15001 and all inbound to 15006,
// with the original destination readable, and leave the proxy's own uid
// and the excluded ports alone.
func TestCaptureRules(t *testing.T) {
	peers.Root(t)
	ctx := context.Background()
	prefix := testPrefix() + "r"
	state := filepath.Join(t.TempDir(), "netns.json")
	topo, err := Create(ctx, Plan{Prefix: prefix, Hosts: 2, Workloads: []string{"a", "b"}, Outside: true}, state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Destroy(ctx, state); err != nil {
			t.Error(err)
		}
	})
	helper := helperBinary(t)
	set, err := capture.Build(capture.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []capture.Backend{capture.NFT, capture.Legacy} {
		t.Run(string(b), func(t *testing.T) {
			for _, w := range topo.Workloads {
				if err := capture.Apply(ctx, w.NS, b, set); err != nil {
					t.Fatal(err)
				}
			}
			defer func() {
				for _, w := range topo.Workloads {
					if err := capture.Cleanup(ctx, w.NS, b, set); err != nil {
						t.Error(err)
					}
				}
			}()
			a, bw := topo.Workloads[0], topo.Workloads[1]
			for _, w := range topo.Workloads {
				serveCaptured(t, w.NS, "0.0.0.0:15001", w.Name+"-outbound")
				serveCaptured(t, w.NS, "0.0.0.0:15006", w.Name+"-inbound")
				serve(t, w.NS, w.Addr.String()+":8080", w.Name+"-app")
				serve(t, w.NS, w.Addr.String()+":15021", w.Name+"-health")
				serve(t, w.NS, "127.0.0.1:9000", w.Name+"-local")
			}
			bApp := bw.Addr.String() + ":8080"
			for _, tt := range []struct {
				name string
				from Namespace
				uid  uint32
				addr string
				want string
			}{
				{"app's outbound goes to its proxy", a.NS, 1000, bApp, "a-outbound " + bApp},
				{"an address outside the mesh too", a.NS, 1000, "10.250.99.7:443", "a-outbound 10.250.99.7:443"},
				{"the proxy's own is not captured out, but is in", a.NS, 1337, bApp, "b-inbound " + bApp},
				{"a client outside the mesh is captured in", topo.Outside.NS, 0, bApp, "b-inbound " + bApp},
				{"excluded inbound port", topo.Outside.NS, 0, bw.Addr.String() + ":15021", "b-health"},
				{"localhost stays local", a.NS, 1000, "127.0.0.1:9000", "a-local"},
			} {
				var got string
				if tt.uid == 0 {
					got = hello(tt.from, tt.addr)
				} else {
					got = helloAs(t, helper, tt.from, tt.uid, tt.addr)
				}
				if got != tt.want {
					t.Errorf("%s: dial %s as %d: got %q, want %q", tt.name, tt.addr, tt.uid, got, tt.want)
				}
			}
		})
	}
}

// TestCaptureTProxy: in TPROXY mode (-m TPROXY) inbound connections reach
// a transparent listener on 15006 with their original destination as the
// local address, no NAT involved, and the policy route comes with the
// rules and goes with them.
func TestCaptureTProxy(t *testing.T) {
	peers.Root(t)
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "netns.json")
	topo, err := Create(ctx, Plan{Prefix: testPrefix() + "p", Hosts: 1, Workloads: []string{"b"}, Outside: true}, state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Destroy(ctx, state); err != nil {
			t.Error(err)
		}
	})
	cfg := capture.Default()
	cfg.Mode = capture.TProxy
	set, err := capture.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := topo.Workloads[0]
	b, err := capture.Detect(ctx, w.NS, capture.Auto)
	if err != nil {
		t.Fatal(err)
	}
	if err := capture.Apply(ctx, w.NS, b, set); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	err = w.NS.Do(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1) }); err != nil {
				return err
			}
			return serr
		}}
		ln, err = lc.Listen(ctx, "tcp", "0.0.0.0:15006")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "tproxy %s\n", c.LocalAddr())
			c.Close()
		}
	}()
	app := w.Addr.String() + ":8080"
	if got := hello(topo.Outside.NS, app); got != "tproxy "+app {
		t.Errorf("dial %s from outside the mesh: got %q, want %q", app, got, "tproxy "+app)
	}
	if err := capture.Cleanup(ctx, w.NS, b, set); err != nil {
		t.Fatal(err)
	}
	if out, err := w.NS.Run(ctx, "", "ip", "-4", "rule", "list"); err != nil || strings.Contains(string(out), "lookup 133") {
		t.Errorf("policy rule left after Cleanup: %s %v", out, err)
	}
	if got := hello(topo.Outside.NS, app); got != "" {
		t.Errorf("after Cleanup %s still lands on the transparent listener: %q", app, got)
	}
}
