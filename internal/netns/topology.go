package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
)

// Network is the private range every address of a topology comes from.
var Network = netip.MustParsePrefix("10.250.0.0/16")

// Plan says what to build: Prefix names every namespace (keep it short and
// unique on the machine, e.g. "pal-1a2b"), Hosts is how many host
// namespaces (at least 1), Workloads are placed on them in turn.
type Plan struct {
	Prefix    string
	Hosts     int
	Workloads []string
	// Outside adds one namespace on the network that belongs to no host:
	// a machine outside the mesh.
	Outside bool
}

// Node is a namespace with its address.
type Node struct {
	NS   Namespace  `json:"ns"`
	Addr netip.Addr `json:"addr"`
}

// Workload is a workload's namespace, address and host (0-based).
type Workload struct {
	Name string `json:"name"`
	Node
	Host int `json:"host"`
}

// Topology is what Create built:
//
//	network namespace (Prefix-net): bridge br0, the "wire" between machines
//	  ├─ veth cp ── control plane namespace (Prefix-cp), 10.250.0.1
//	  ├─ veth hI ── host namespace I (Prefix-hI), 10.250.0.(10+I), a router:
//	  │              bridge cni0 10.250.I.1/24
//	  │                └─ veth wK ── workload namespace (Prefix-wK), 10.250.I.(10+K)
//	  └─ veth out ─ outside namespace (Prefix-out), 10.250.0.200
//
// Nothing is made in the namespace Create runs in; deleting the
// namespaces removes every link and rule with them.
type Topology struct {
	Prefix       string     `json:"prefix"`
	Net          Namespace  `json:"net"`
	ControlPlane Node       `json:"controlPlane"`
	Hosts        []Node     `json:"hosts"`
	Workloads    []Workload `json:"workloads"`
	Outside      *Node      `json:"outside,omitempty"`
}

// Namespaces lists every namespace of the topology, the network last.
func (t *Topology) Namespaces() []Namespace {
	var out []Namespace
	for _, w := range t.Workloads {
		out = append(out, w.NS)
	}
	for _, h := range t.Hosts {
		out = append(out, h.NS)
	}
	out = append(out, t.ControlPlane.NS)
	if t.Outside != nil {
		out = append(out, t.Outside.NS)
	}
	return append(out, t.Net)
}

// Workload finds a workload by name.
func (t *Topology) Workload(name string) (Workload, bool) {
	for _, w := range t.Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

func addr(b3, b4 int) netip.Addr {
	a := Network.Addr().As4()
	return netip.AddrFrom4([4]byte{a[0], a[1], byte(b3), byte(b4)})
}

// Create builds plan. The record of every namespace it will make is
// written to statePath before the first is made, so a crash leaves a list
// that Remove can clean up. On error, whatever was made is removed.
func Create(ctx context.Context, plan Plan, statePath string) (t *Topology, err error) {
	if plan.Hosts < 1 || plan.Hosts > 200 {
		return nil, fmt.Errorf("netns: %d hosts: want 1-200", plan.Hosts)
	}
	if len(plan.Workloads) > 200*plan.Hosts {
		return nil, fmt.Errorf("netns: %d workloads: at most 200 a host", len(plan.Workloads))
	}
	if plan.Prefix == "" || len(plan.Prefix) > 20 {
		return nil, fmt.Errorf("netns: prefix %q: want 1-20 characters", plan.Prefix)
	}
	t = &Topology{Prefix: plan.Prefix, Net: Namespace(plan.Prefix + "-net"),
		ControlPlane: Node{NS: Namespace(plan.Prefix + "-cp"), Addr: addr(0, 1)}}
	for i := range plan.Hosts {
		t.Hosts = append(t.Hosts, Node{NS: Namespace(plan.Prefix + "-h" + strconv.Itoa(i+1)), Addr: addr(0, 10+i+1)})
	}
	for k, name := range plan.Workloads {
		h := k % plan.Hosts
		t.Workloads = append(t.Workloads, Workload{Name: name, Host: h,
			Node: Node{NS: Namespace(fmt.Sprintf("%s-w%d", plan.Prefix, k+1)), Addr: addr(h+1, 10+k/plan.Hosts)}})
	}
	if plan.Outside {
		t.Outside = &Node{NS: Namespace(plan.Prefix + "-out"), Addr: addr(0, 200)}
	}
	if err := t.save(statePath); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Destroy(context.WithoutCancel(ctx), statePath))
			t = nil
		}
	}()
	if err := t.build(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Topology) build(ctx context.Context) error {
	for _, n := range t.Namespaces() {
		if err := Add(ctx, n); err != nil {
			return err
		}
	}
	net := string(t.Net)
	steps := [][]string{
		{"-n", net, "link", "add", "br0", "type", "bridge"},
		{"-n", net, "link", "set", "br0", "up"},
	}
	// uplink joins node to the network's bridge as eth0 with a /24 on the
	// backbone 10.250.0.0/24.
	uplink := func(peer string, n Node) {
		steps = append(steps,
			[]string{"-n", net, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", string(n.NS)},
			[]string{"-n", net, "link", "set", peer, "master", "br0", "up"},
			[]string{"-n", string(n.NS), "addr", "add", n.Addr.String() + "/24", "dev", "eth0"},
			[]string{"-n", string(n.NS), "link", "set", "eth0", "up"})
	}
	uplink("cp", t.ControlPlane)
	if t.Outside != nil {
		uplink("out", *t.Outside)
	}
	for i, h := range t.Hosts {
		uplink("h"+strconv.Itoa(i+1), h)
		hn := string(h.NS)
		steps = append(steps,
			[]string{"-n", hn, "link", "add", "cni0", "type", "bridge"},
			[]string{"-n", hn, "addr", "add", addr(i+1, 1).String() + "/24", "dev", "cni0"},
			[]string{"-n", hn, "link", "set", "cni0", "up"})
	}
	// Every backbone node reaches every host's pod range through it.
	backbone := append([]Node{t.ControlPlane}, t.Hosts...)
	if t.Outside != nil {
		backbone = append(backbone, *t.Outside)
	}
	for i, h := range t.Hosts {
		for _, n := range backbone {
			if n.NS != h.NS {
				steps = append(steps, []string{"-n", string(n.NS), "route", "add", podRange(i).String(), "via", h.Addr.String()})
			}
		}
	}
	for k, w := range t.Workloads {
		hn, peer := string(t.Hosts[w.Host].NS), "w"+strconv.Itoa(k+1)
		steps = append(steps,
			[]string{"-n", hn, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", string(w.NS)},
			[]string{"-n", hn, "link", "set", peer, "master", "cni0", "up"},
			[]string{"-n", string(w.NS), "addr", "add", w.Addr.String() + "/24", "dev", "eth0"},
			[]string{"-n", string(w.NS), "link", "set", "eth0", "up"},
			// A default route, so that any destination is routable and
			// so captured; the host has none, so nothing goes further.
			[]string{"-n", string(w.NS), "route", "add", "default", "via", addr(w.Host+1, 1).String()})
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	for _, h := range t.Hosts {
		if _, err := h.NS.Run(ctx, "", "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return err
		}
	}
	return nil
}

// podRange is host i's workload range, 10.250.(i+1).0/24.
func podRange(i int) netip.Prefix { return netip.PrefixFrom(addr(i+1, 0), 24) }

// SetHostLink cuts (up=false) or restores host i's link to the network:
// its workloads still reach each other, nobody else reaches them.
func (t *Topology) SetHostLink(ctx context.Context, i int, up bool) error {
	if i < 0 || i >= len(t.Hosts) {
		return fmt.Errorf("netns: host %d: have %d", i, len(t.Hosts))
	}
	state := "down"
	if up {
		state = "up"
	}
	return ip(ctx, "-n", string(t.Net), "link", "set", "h"+strconv.Itoa(i+1), state)
}

// Destroy deletes every namespace of the topology and then its record.
func (t *Topology) Destroy(ctx context.Context, statePath string) error {
	var errs []error
	for _, n := range t.Namespaces() {
		if err := Delete(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && statePath != "" {
		if err := os.Remove(statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("netns: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (t *Topology) save(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("netns: record: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("netns: record: %w", err)
	}
	return nil
}

// Remove deletes what a record at statePath lists, left by a run that did
// not end cleanly; no record is no error.
func Remove(ctx context.Context, statePath string) error {
	b, err := os.ReadFile(statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	var t Topology
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("netns: %s: %w", statePath, err)
	}
	return t.Destroy(ctx, statePath)
}
