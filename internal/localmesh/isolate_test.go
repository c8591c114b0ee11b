package localmesh

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/netns"
)

func TestPrefixIsShortAndStable(t *testing.T) {
	a, b := prefix("/home/me/.palisade"), prefix("/home/me/other/.palisade")
	if a != prefix("/home/me/.palisade") || a == b {
		t.Errorf("prefix: %q, %q", a, b)
	}
	// Namespaces are named PREFIX-wNNN: well inside netns' 20 characters.
	if !strings.HasPrefix(a, "pal-") || len(a) > 12 {
		t.Errorf("prefix %q", a)
	}
}

func TestWithoutProxyEnv(t *testing.T) {
	got := withoutProxyEnv([]string{"PATH=/bin", "HTTP_PROXY=http://x", "https_proxy=http://y", "no_proxy=z", "ALL_PROXY=a", "HOME=/root", "PROXY_OF_MINE=kept"})
	want := []string{"PATH=/bin", "HOME=/root", "PROXY_OF_MINE=kept"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReachableBy(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.MkdirAll(open, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Skip("cannot open up the temp dir's parents:", err)
		}
	}
	bin := filepath.Join(open, "palisade-proxy")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := reachableBy(bin, ProxyUID); err != nil {
		t.Errorf("open path: %v", err)
	}
	if err := os.Chmod(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := reachableBy(bin, ProxyUID); err == nil || !strings.Contains(err.Error(), "not searchable") {
		t.Errorf("private directory: %v", err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := reachableBy(bin, ProxyUID); err == nil || !strings.Contains(err.Error(), "not executable") {
		t.Errorf("private binary: %v", err)
	}
}

type staticRegistry []*controlplane.Workload

func (r staticRegistry) Workloads(*config.Snapshot) []*controlplane.Workload { return r }

func TestAddressRegistry(t *testing.T) {
	fe := controlplane.WorkloadKey{Namespace: "workshop", Name: "frontend"}
	other := controlplane.WorkloadKey{Namespace: "workshop", Name: "elsewhere"}
	reg := addressRegistry{
		base: staticRegistry{{Key: fe, Address: "192.0.2.1"}, {Key: other, Address: "192.0.2.2"}},
		addrs: map[controlplane.WorkloadKey]netns.Workload{
			fe: {Name: fe.String(), Node: netns.Node{Addr: netns.Network.Addr().Next()}},
		},
	}
	ws := reg.Workloads(nil)
	if ws[0].Address != "10.250.0.1" {
		t.Errorf("frontend at %q: the namespace's address wins", ws[0].Address)
	}
	if ws[1].Address != "192.0.2.2" {
		t.Errorf("a workload with no namespace keeps its address, got %q", ws[1].Address)
	}
}
