package netns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/peers"
)

// TestMain lets the test binary stand in for a process run inside a
// namespace: PALISADE_NETNS_HELPER=dial ADDR connects to ADDR and prints
// the first line the server sends.
func TestMain(m *testing.M) {
	if os.Getenv("PALISADE_NETNS_HELPER") == "dial" {
		c, err := net.DialTimeout("tcp", os.Args[len(os.Args)-1], 2*time.Second)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Print(line)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testPrefix() string { return fmt.Sprintf("pal-t%d", os.Getpid()%100000) }

// leftovers lists the namespaces with prefix that exist.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			left = append(left, f[0])
		}
	}
	return left
}

// serve answers every connection with name and a newline.
func serve(t *testing.T, n Namespace, addr, name string) {
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
			io.WriteString(c, name+"\n") //nolint:errcheck
			c.Close()
		}
	}()
}

// hello dials addr from inside n and returns the server's line, or "".
func hello(n Namespace, addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	c, err := n.Dial(ctx, "tcp", addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second)) //nolint:errcheck
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func TestTopology(t *testing.T) {
	peers.Root(t)
	ctx := context.Background()
	prefix := testPrefix()
	state := filepath.Join(t.TempDir(), "netns.json")
	topo, err := Create(ctx, Plan{Prefix: prefix, Hosts: 3, Workloads: []string{"a", "b", "c", "d", "e", "f"}, Outside: true}, state)
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			topo.Destroy(ctx, state) //nolint:errcheck
		}
	})
	if len(leftovers(t, prefix)) != 3+6+3 {
		t.Fatalf("namespaces: %v", leftovers(t, prefix))
	}
	for _, w := range topo.Workloads {
		if !Network.Contains(w.Addr) {
			t.Fatalf("%s at %s, outside %s", w.Name, w.Addr, Network)
		}
		serve(t, w.NS, w.Addr.String()+":8080", w.Name)
	}
	serve(t, topo.ControlPlane.NS, topo.ControlPlane.Addr.String()+":15012", "cp")
	at := func(name string) Workload { w, _ := topo.Workload(name); return w }

	// Everyone reaches everyone, across hosts, and the control plane.
	for _, from := range topo.Workloads {
		for _, to := range topo.Workloads {
			if got := hello(from.NS, to.Addr.String()+":8080"); got != to.Name {
				t.Errorf("%s -> %s: got %q", from.Name, to.Name, got)
			}
		}
		if got := hello(from.NS, topo.ControlPlane.Addr.String()+":15012"); got != "cp" {
			t.Errorf("%s -> control plane: got %q", from.Name, got)
		}
	}
	if got := hello(topo.Outside.NS, at("c").Addr.String()+":8080"); got != "c" {
		t.Errorf("outside -> c: got %q", got)
	}
	// Workloads spread round robin: b and e on host 2.
	if at("b").Host != 1 || at("e").Host != 1 {
		t.Fatalf("b on %d, e on %d", at("b").Host, at("e").Host)
	}
	if err := topo.SetHostLink(ctx, 1, false); err != nil {
		t.Fatal(err)
	}
	if got := hello(at("b").NS, at("e").Addr.String()+":8080"); got != "e" {
		t.Errorf("link cut: b -> e on the same host: got %q", got)
	}
	for _, pair := range [][2]string{{"a", "b"}, {"e", "c"}} {
		if got := hello(at(pair[0]).NS, at(pair[1]).Addr.String()+":8080"); got != "" {
			t.Errorf("link cut: %s -> %s still answers %q", pair[0], pair[1], got)
		}
	}
	if got := hello(at("b").NS, topo.ControlPlane.Addr.String()+":15012"); got != "" {
		t.Errorf("link cut: b still reaches the control plane")
	}
	if err := topo.SetHostLink(ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	if got := hello(at("a").NS, at("b").Addr.String()+":8080"); got != "b" {
		t.Errorf("link restored: a -> b: got %q", got)
	}

	if err := topo.Destroy(ctx, state); err != nil {
		t.Fatal(err)
	}
	destroyed = true
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("left after Destroy: %v", left)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("record %s still there: %v", state, err)
	}
}

// TestRemoveAfterCrash: a run that never called Destroy leaves its record;
// Remove (what the next start calls) deletes everything it lists.
func TestRemoveAfterCrash(t *testing.T) {
	peers.Root(t)
	ctx := context.Background()
	prefix := testPrefix() + "c"
	state := filepath.Join(t.TempDir(), "netns.json")
	topo, err := Create(ctx, Plan{Prefix: prefix, Hosts: 1, Workloads: []string{"a", "b"}}, state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Destroy(ctx, "") }) //nolint:errcheck
	// Part of it already gone, as after a crash half way through cleanup.
	if err := Delete(ctx, topo.Workloads[0].NS); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, state); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("left after Remove: %v", left)
	}
	if err := Remove(ctx, state); err != nil {
		t.Errorf("Remove with no record: %v", err)
	}
}

func TestCreateRefusesBadPlans(t *testing.T) {
	for _, tt := range []struct {
		name string
		plan Plan
		want string
	}{
		{"no hosts", Plan{Prefix: "pal-x", Hosts: 0}, "0 hosts"},
		{"no prefix", Plan{Hosts: 1}, "prefix"},
		{"long prefix", Plan{Prefix: strings.Repeat("p", 21), Hosts: 1}, "prefix"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Create(context.Background(), tt.plan, filepath.Join(t.TempDir(), "s.json"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
