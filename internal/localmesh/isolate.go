package localmesh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/netns"
)

// Isolate runs every workload in a network namespace of its own
// (`palisade up --isolate`): see package netns for the topology. Needs
// root.
type Isolate struct {
	// Hosts is how many host namespaces carry the workloads (default 1).
	Hosts int
	// IPTablesBackend is palisade-proxy init's --iptables-backend: auto,
	// nft or legacy ("" is auto).
	IPTablesBackend string
}

// ProxyUID is the uid and gid isolated sidecars run as: Istio's 1337,
// which the capture rules leave alone.
const ProxyUID = 1337

// NetnsStateFile records the namespaces an isolated mesh made, so the
// next start removes them after a crash.
const NetnsStateFile = "netns.json"

// The ports a captured sidecar uses inside its workload's namespace, as
// Istio's sidecar does.
const (
	captureOutbound = "0.0.0.0:15001"
	captureInbound  = "0.0.0.0:15006"
	dnsProxy        = "127.0.0.1:15053"
	sidecarAdmin    = "127.0.0.1:15000"
)

// isolation is what an isolated mesh made.
type isolation struct {
	topo  *netns.Topology
	state string
	cpLn  net.Listener
	byKey map[controlplane.WorkloadKey]netns.Workload
	// run holds what the sidecars, running as ProxyUID, read and make:
	// the trust bundle and their Workload API sockets. It sits under
	// /run, since the state directory may be private to root.
	run string
}

// runDir is where an isolated mesh keeps what its sidecars need.
func runDir(prefix string) string { return filepath.Join("/run", "palisade", prefix) }

// prefix names a state directory's namespaces: short, and the same for
// the same directory, so two meshes never share one.
func prefix(stateDir string) string {
	sum := sha256.Sum256([]byte(stateDir))
	return "pal-" + hex.EncodeToString(sum[:3])
}

// startIsolation removes what a crashed run left, builds the topology for
// the workloads of snap, and opens the control plane's listener in its
// namespace.
func startIsolation(ctx context.Context, o Options, snap *config.Snapshot) (*isolation, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("localmesh: --isolate makes network namespaces and iptables rules: run as root")
	}
	state := filepath.Join(o.StateDir, NetnsStateFile)
	if err := netns.Remove(ctx, state); err != nil {
		return nil, fmt.Errorf("localmesh: remove what the last run left: %w", err)
	}
	if err := reachableBy(o.ProxyBin, ProxyUID); err != nil {
		return nil, fmt.Errorf("localmesh: --isolate runs the sidecar as uid %d: %w", ProxyUID, err)
	}
	ws := controlplane.ConfigRegistry{}.Workloads(snap)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Key.String() < ws[j].Key.String() })
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = w.Key.String()
	}
	hosts := o.Isolate.Hosts
	if hosts == 0 {
		hosts = 1
	}
	topo, err := netns.Create(ctx, netns.Plan{Prefix: prefix(o.StateDir), Hosts: hosts, Workloads: names, Outside: true}, state)
	if err != nil {
		return nil, err
	}
	iso := &isolation{topo: topo, state: state, byKey: map[controlplane.WorkloadKey]netns.Workload{}, run: runDir(topo.Prefix)}
	for i, w := range ws {
		iso.byKey[w.Key] = topo.Workloads[i]
	}
	cpAddr := net.JoinHostPort(topo.ControlPlane.Addr.String(), portOf(o.GRPCListen, "15012"))
	if iso.cpLn, err = topo.ControlPlane.NS.Listen("tcp", cpAddr); err != nil {
		return nil, errors.Join(err, iso.destroy())
	}
	os.RemoveAll(iso.run) //nolint:errcheck // a crashed run's
	if err := os.MkdirAll(iso.run, 0o755); err != nil {
		return nil, errors.Join(fmt.Errorf("localmesh: %w", err), iso.destroy())
	}
	return iso, nil
}

// reachableBy checks that uid may run the file at path: every directory
// on the way searchable by others, the file executable by others (uid is
// neither its owner nor in its group here).
func reachableBy(path string, uid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o001 == 0 {
		return fmt.Errorf("%s is not executable by others", abs)
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		di, err := os.Stat(d)
		if err != nil {
			return err
		}
		if di.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("directory %s is not searchable by others (chmod o+x), so %s cannot be run by uid %d", d, abs, uid)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func portOf(addr, def string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil && p != "0" {
		return p
	}
	return def
}

// destroy removes the topology, and with it every link and rule.
func (iso *isolation) destroy() error {
	if iso == nil {
		return nil
	}
	if iso.cpLn != nil {
		iso.cpLn.Close()
	}
	var errs []error
	if iso.run != "" {
		if err := os.RemoveAll(iso.run); err != nil {
			errs = append(errs, fmt.Errorf("localmesh: %w", err))
		}
		os.Remove(filepath.Dir(iso.run)) //nolint:errcheck // only when no other mesh uses it

	}
	return errors.Join(append(errs, iso.topo.Destroy(context.Background(), iso.state))...)
}

// addressRegistry gives each workload its namespace's address (the only
// one it has, whatever spec.address says), so the mesh reaches it at
// address:port through its sidecar's inbound capture.
type addressRegistry struct {
	base  controlplane.Registry
	addrs map[controlplane.WorkloadKey]netns.Workload
}

func (r addressRegistry) Workloads(snap *config.Snapshot) []*controlplane.Workload {
	ws := r.base.Workloads(snap)
	for _, w := range ws {
		if nw, ok := r.addrs[w.Key]; ok {
			w.Address = nw.Addr.String()
		}
	}
	return ws
}

// nsHTTPOK is httpOK from inside a namespace.
func nsHTTPOK(n netns.Namespace, u string) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return n.Dial(ctx, network, addr) },
	}}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return errors.New(resp.Status)
	}
	return nil
}

// proxyEnv are the variables an isolated app must not inherit: it calls
// plain service URLs and its traffic is captured.
var proxyEnv = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}

func withoutProxyEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, p := range proxyEnv {
			drop = drop || strings.EqualFold(k, p)
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// startIsolatedWorkload applies the capture rules in the workload's
// namespace with `palisade-proxy init` (what an injected pod's init
// container runs), then starts its sidecar as ProxyUID and its app with no
// proxy variables, both inside the namespace. The app listens on
// 127.0.0.1 at its service port, as a container beside its sidecar does.
func (m *Mesh) startIsolatedWorkload(ctx context.Context, w *controlplane.Workload, r *config.Resource, bundlePath string, td spiffeid.TrustDomain) error {
	spec := r.Spec.(*config.WorkloadSpec)
	o := m.opts
	nw := m.iso.byKey[w.Key]
	initArgs := []string{"init", "--redirect-dns", "--capture-all-dns"}
	if o.Isolate.IPTablesBackend != "" {
		initArgs = append(initArgs, "--iptables-backend", o.Isolate.IPTablesBackend)
	}
	if _, err := nw.NS.Run(ctx, "", o.ProxyBin, initArgs...); err != nil {
		return fmt.Errorf("localmesh: %s: palisade-proxy init: %w", w.Key, err)
	}
	token, err := m.daemon.Tokens.Issue(w.Key.Namespace, w.ServiceAccount, 5*time.Minute)
	if err != nil {
		return err
	}
	sockDir := filepath.Join(m.iso.run, w.Key.Namespace+"."+w.Key.Name)
	if err := os.MkdirAll(sockDir, 0o755); err != nil {
		return fmt.Errorf("localmesh: %w", err)
	}
	if err := os.Chown(sockDir, ProxyUID, ProxyUID); err != nil {
		return fmt.Errorf("localmesh: %w", err)
	}
	socket := filepath.Join(sockDir, "agent.sock")
	// The bundle as it is now: the sidecar reads it once, to trust the
	// control plane; later roots reach it by push.
	bundle, err := os.ReadFile(bundlePath)
	if err != nil {
		return fmt.Errorf("localmesh: %w", err)
	}
	bundlePath = filepath.Join(sockDir, "root-cert.pem")
	if err := os.WriteFile(bundlePath, bundle, 0o644); err != nil {
		return fmt.Errorf("localmesh: %w", err)
	}
	args := []string{
		"--workload", w.Key.String(), "--service-account", w.ServiceAccount, "--service", w.Service,
		"--control-plane", m.daemon.GRPCAddr(), "--trust-domain", td.Name(), "--bundle", bundlePath,
		"--admin", sidecarAdmin, "--workload-api", socket,
		"--capture", "--capture-outbound", captureOutbound, "--capture-inbound", captureInbound, "--dns", dnsProxy,
	}
	if o.CertTTL > 0 {
		args = append(args, "--cert-ttl", o.CertTTL.String())
	}
	for k, v := range w.Labels {
		args = append(args, "--label", k+"="+v)
	}
	env := []string{}
	var firstApp string
	for i, p := range spec.Ports {
		port := strconv.FormatUint(uint64(p.Number), 10)
		appAddr := net.JoinHostPort("127.0.0.1", port)
		if i == 0 {
			firstApp = appAddr
			env = append(env, "PORT="+port)
		}
		if p.Name != "" {
			env = append(env, "PALISADE_PORT_"+envName(p.Name)+"="+port)
		}
		args = append(args, "--inbound", fmt.Sprintf("port=%d,name=%s,protocol=%s,app=%s", p.Number, p.Name, p.Protocol, appAddr))
	}
	logf, err := openLog(filepath.Join(o.StateDir, "logs", w.Key.Namespace+"."+w.Key.Name+".proxy.log"))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(context.WithoutCancel(ctx), o.ProxyBin, args...)
	cmd.Env = append(withoutProxyEnv(os.Environ()), "PALISADE_JOIN_TOKEN="+token)
	cmd.Dir = sockDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: ProxyUID, Gid: ProxyUID}}
	sidecar, err := startProcessWith(w.Key.String()+" sidecar", cmd, logf, o.Log, nw.NS.Start)
	if err != nil {
		return err
	}
	m.procs = append(m.procs, sidecar)
	if err := sidecar.waitFor(ctx, "ready", 30*time.Second, func() error { return nsHTTPOK(nw.NS, "http://"+sidecarAdmin+"/ready") }); err != nil {
		return err
	}

	if err := m.startApp(ctx, w, r, spec, append(withoutProxyEnv(os.Environ()), env...), socket, firstApp, nw.NS.Start,
		func(u string) error { return nsHTTPOK(nw.NS, u) }); err != nil {
		return err
	}
	id, _ := spiffeid.FromSegments(td, "ns", w.Key.Namespace, "sa", w.ServiceAccount)
	first := ""
	if len(spec.Ports) > 0 {
		first = net.JoinHostPort(nw.Addr.String(), strconv.FormatUint(uint64(spec.Ports[0].Number), 10))
	}
	m.rows = append(m.rows, row{name: w.Key.Name, ns: w.Key.Namespace, inbound: first + " (" + string(nw.NS) + ")", app: firstApp, id: id.String()})
	return nil
}

// printHelp says how to reach the isolated workloads: only from the
// mesh's own namespaces, never from the machine's.
func (iso *isolation) printHelp(w io.Writer) {
	t := iso.topo
	fmt.Fprintf(w, "network namespaces: %s-* (%d hosts); run a command beside a workload with `ip netns exec NAMESPACE CMD`\n", t.Prefix, len(t.Hosts))
	if len(t.Workloads) > 0 {
		wl := t.Workloads[0]
		fmt.Fprintf(w, "  inside the mesh:  ip netns exec %s curl http://<service>:<port>/\n", wl.NS)
		fmt.Fprintf(w, "  outside the mesh: ip netns exec %s curl http://%s:<port>/   (reset under STRICT)\n", t.Outside.NS, wl.Addr)
	}
}

// Topology is the isolated mesh's network, nil without --isolate.
func (m *Mesh) Topology() *netns.Topology {
	if m.iso == nil {
		return nil
	}
	return m.iso.topo
}
