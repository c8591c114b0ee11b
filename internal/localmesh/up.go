package localmesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/dashboard"
)

// Options configure `palisade up`.
type Options struct {
	Dir         string // the mesh's YAML
	StateDir    string // CA, logs, sockets, mesh.json
	ProxyBin    string // palisade-proxy
	BinDir      string // searched first for workload commands
	GRPCListen  string
	AdminListen string
	// CertTTL is the lifetime of workload certificates (default 24h).
	CertTTL time.Duration
	// MaxCertTTL is the longest lifetime the CA issues (default 90 days).
	MaxCertTTL time.Duration
	// RotationGrace is how long a new root is trusted before it issues
	// (default 1h).
	RotationGrace time.Duration
	// GatewayPortOffset moves the gateway's privileged ports (below 1024)
	// up, so palisade up needs no privileges: 80 listens on 8080.
	GatewayPortOffset int
	// Isolate, when set, runs each workload in a network namespace of its
	// own with captured traffic (`palisade up --isolate`); nil keeps the
	// explicit-proxy mode, which needs no privileges.
	Isolate *Isolate
	// AllowRoot passes --allow-root to every proxy: palisade-proxy
	// refuses to run as root otherwise.
	AllowRoot bool
	// ProxyLogLevel is every proxy's --log-level ("" for its default).
	ProxyLogLevel string
	Log           *slog.Logger
	Out           io.Writer // the table and messages for the user
	// Dashboard says where the dashboard is exposed besides the admin
	// listener, which always serves it: a listener of its own behind the
	// token in the state directory's dashboard-token (TokenFile is set
	// here), and how many records it keeps per workload.
	Dashboard dashboard.AttachOptions
}

// proxyFlags are the flags every proxy gets from the options.
func (o Options) proxyFlags() []string {
	var fl []string
	if o.AllowRoot {
		fl = append(fl, "--allow-root")
	}
	if o.ProxyLogLevel != "" {
		fl = append(fl, "--log-level", o.ProxyLogLevel)
	}
	return fl
}

// StateFile is where a running mesh says how to reach it, for `palisade
// status` from another terminal.
const StateFile = "mesh.json"

// PrivilegedSocket is the control plane's socket for join tokens and root
// rotation, in the state directory.
const PrivilegedSocket = "control.sock"

// State is the content of StateFile.
type State struct {
	AdminAddress string `json:"adminAddress"`
	GRPCAddress  string `json:"grpcAddress"`
	// PrivilegedSocket mints join tokens and rotates the root (0600).
	PrivilegedSocket string `json:"privilegedSocket"`
	ConfigDir        string `json:"configDir"`
	PID              int    `json:"pid"`
	// DashboardURL is the exposed dashboard listener's base URL, "" when
	// none (the admin listener serves it at /dashboard/).
	DashboardURL string `json:"dashboardURL,omitempty"`
}

// DashboardTokenFile holds, in the state directory, the token an exposed
// dashboard asks for (0600).
const DashboardTokenFile = "dashboard-token"

// Mesh is a running local mesh.
type Mesh struct {
	opts   Options
	daemon *controlplane.Daemon
	procs  []*process
	rows   []row
	urls   []string
	iso    *isolation

	stopBundle context.CancelFunc
}

type row struct {
	name, ns, inbound, app, id string
}

// Up starts the mesh and returns once every workload is healthy. Stop it
// with Stop.
func Up(ctx context.Context, o Options) (m *Mesh, err error) {
	// The state directory holds the CA's keys and the privileged
	// socket: only its owner may enter it, even when it already existed.
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("localmesh: state dir: %w", err)
	}
	if err := os.Chmod(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("localmesh: state dir: %w", err)
	}
	for _, d := range []string{"ca", "logs", "sockets"} {
		if err := os.MkdirAll(filepath.Join(o.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("localmesh: state dir: %w", err)
		}
	}
	snap, err := config.Load(o.Dir)
	if err != nil {
		return nil, err
	}
	td, err := spiffeid.TrustDomainFromString(snap.Mesh.GetTrustDomain())
	if err != nil {
		return nil, fmt.Errorf("localmesh: trustDomain: %w", err)
	}
	auth, err := ca.OpenOrInit(filepath.Join(o.StateDir, "ca"), ca.Options{TrustDomain: td, DefaultTTL: o.CertTTL, MaxTTL: o.MaxCertTTL, RotationGrace: o.RotationGrace, Logger: o.Log})
	if err != nil {
		return nil, err
	}
	bundlePath := filepath.Join(o.StateDir, "root-cert.pem")
	if err := os.WriteFile(bundlePath, auth.Bundle().MarshalPEM(), 0o644); err != nil {
		return nil, fmt.Errorf("localmesh: write bundle: %w", err)
	}
	dopts := controlplane.DaemonOptions{
		ConfigDir: o.Dir, Authority: auth, GRPCListen: o.GRPCListen, AdminListen: o.AdminListen, Log: o.Log,
		PrivilegedSocket: filepath.Join(o.StateDir, PrivilegedSocket),
	}
	var iso *isolation
	if o.Isolate != nil {
		if iso, err = startIsolation(ctx, o, snap); err != nil {
			return nil, err
		}
		dopts.GRPCListener = iso.cpLn
		dopts.Registry = addressRegistry{base: controlplane.ConfigRegistry{}, addrs: iso.byKey}
	}
	d, err := controlplane.StartDaemon(ctx, dopts)
	if err != nil {
		return nil, errors.Join(err, iso.destroy())
	}
	m = &Mesh{opts: o, daemon: d, iso: iso}
	// root-cert.pem follows the live bundle, so a sidecar started after a
	// root rotation (by hand, with a join token) trusts the CA's new root.
	bctx, stopBundle := context.WithCancel(ctx)
	m.stopBundle = stopBundle
	go writeBundle(bctx, auth, bundlePath, o.Log)
	// Every failure below returns nil for the mesh: stop what started
	// through a copy of the pointer, or the processes already started
	// outlive palisade up.
	started := m
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	do := o.Dashboard
	do.Log, do.TokenFile = o.Log, filepath.Join(o.StateDir, DashboardTokenFile)
	dash, err := dashboard.Attach(ctx, d, do)
	if err != nil {
		return nil, err
	}
	st, _ := json.Marshal(State{AdminAddress: d.AdminAddr(), GRPCAddress: d.GRPCAddr(), PrivilegedSocket: filepath.Join(o.StateDir, PrivilegedSocket), ConfigDir: o.Dir, PID: os.Getpid(),
		DashboardURL: dash.URL()})
	if err := os.WriteFile(filepath.Join(o.StateDir, StateFile), st, 0o644); err != nil {
		return nil, fmt.Errorf("localmesh: write state: %w", err)
	}
	ws := controlplane.ConfigRegistry{}.Workloads(snap)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Key.String() < ws[j].Key.String() })
	specs := map[controlplane.WorkloadKey]*config.Resource{}
	for _, r := range snap.OfKind(config.KindWorkload) {
		specs[controlplane.WorkloadKey{Namespace: r.Meta.Namespace, Name: r.Meta.Name}] = r
	}
	for _, w := range ws {
		start := m.startWorkload
		if iso != nil {
			start = m.startIsolatedWorkload
		}
		if err := start(ctx, w, specs[w.Key], bundlePath, td); err != nil {
			return nil, err
		}
	}
	if ports := gatewayPorts(snap); len(ports) > 0 && iso != nil {
		o.Log.Warn("the ingress gateway is not started under --isolate: reach the workloads from the namespace outside the mesh", "namespace", iso.topo.Outside.NS)
	} else if len(ports) > 0 {
		if err := m.startGateway(ctx, ports, bundlePath, td); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// The ingress gateway palisade up runs, as Istio installs it.
const (
	GatewayNamespace      = "istio-ingress"
	GatewayName           = "istio-ingressgateway"
	GatewayServiceAccount = "istio-ingressgateway-service-account"
)

// GatewayLabels are the gateway's labels, which Gateway resources and
// gateway policies select.
var GatewayLabels = map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}

// gatewayPorts lists the server ports of the Gateways that select the
// ingress gateway.
func gatewayPorts(snap *config.Snapshot) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, r := range snap.OfKind(config.KindGateway) {
		g := r.Spec.(*networkingv1alpha3.Gateway)
		if !config.MatchLabels(g.GetSelector(), GatewayLabels) {
			continue
		}
		for _, s := range g.GetServers() {
			if n := s.GetPort().GetNumber(); !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// GatewayAddress is where the local gateway listens for a Gateway port:
// privileged ports move up by the offset (80 → 8080), others stay.
func GatewayAddress(port uint32, offset int) string {
	if port < 1024 {
		return fmt.Sprintf("127.0.0.1:%d", int(port)+offset)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func (m *Mesh) startGateway(ctx context.Context, ports []uint32, bundlePath string, td spiffeid.TrustDomain) error {
	o := m.opts
	token, err := m.daemon.Tokens.Issue(GatewayNamespace, GatewayServiceAccount, 5*time.Minute)
	if err != nil {
		return err
	}
	adminAddr, err := FreeAddr()
	if err != nil {
		return err
	}
	args := []string{"gateway",
		"--workload", GatewayNamespace + "/" + GatewayName, "--service-account", GatewayServiceAccount,
		"--control-plane", m.daemon.GRPCAddr(), "--trust-domain", td.Name(), "--bundle", bundlePath,
		"--admin", adminAddr, "--credentials-dir", filepath.Join(o.Dir, "credentials"),
	}
	if o.CertTTL > 0 {
		args = append(args, "--cert-ttl", o.CertTTL.String())
	}
	for k, v := range GatewayLabels {
		args = append(args, "--label", k+"="+v)
	}
	var urls []string
	for _, p := range ports {
		addr := GatewayAddress(p, o.GatewayPortOffset)
		args = append(args, "--port", fmt.Sprintf("%d=%s", p, addr))
		scheme := "http"
		if p == 443 || p == 8443 {
			scheme = "https"
		}
		urls = append(urls, fmt.Sprintf("%s://%s/ (Gateway port %d)", scheme, addr, p))
	}
	logf, err := openLog(filepath.Join(o.StateDir, "logs", GatewayNamespace+"."+GatewayName+".proxy.log"))
	if err != nil {
		return err
	}
	args = append(args, o.proxyFlags()...)
	cmd := exec.CommandContext(context.WithoutCancel(ctx), o.ProxyBin, args...)
	cmd.Env = append(os.Environ(), "PALISADE_JOIN_TOKEN="+token)
	gw, err := startProcess("ingress gateway", cmd, logf, o.Log)
	if err != nil {
		return err
	}
	m.procs = append(m.procs, gw)
	if err := gw.waitFor(ctx, "ready", 30*time.Second, func() error { return httpOK("http://" + adminAddr + "/ready") }); err != nil {
		return err
	}
	m.urls = urls
	return nil
}

func (m *Mesh) startWorkload(ctx context.Context, w *controlplane.Workload, r *config.Resource, bundlePath string, td spiffeid.TrustDomain) error {
	spec := r.Spec.(*config.WorkloadSpec)
	o := m.opts
	token, err := m.daemon.Tokens.Issue(w.Key.Namespace, w.ServiceAccount, 5*time.Minute)
	if err != nil {
		return err
	}
	adminAddr, err := FreeAddr()
	if err != nil {
		return err
	}
	httpProxy, err := FreeAddr()
	if err != nil {
		return err
	}
	// HTTPS_PROXY too: grpc-go (and Go's http.ProxyFromEnvironment for
	// https URLs) read only that one, and reach the sidecar by CONNECT.
	env := []string{"HTTP_PROXY=http://" + httpProxy, "http_proxy=http://" + httpProxy,
		"HTTPS_PROXY=http://" + httpProxy, "https_proxy=http://" + httpProxy,
		"NO_PROXY=localhost,127.0.0.1", "no_proxy=localhost,127.0.0.1"}
	args := []string{
		"--workload", w.Key.String(), "--service-account", w.ServiceAccount, "--service", w.Service,
		"--control-plane", m.daemon.GRPCAddr(), "--trust-domain", td.Name(), "--bundle", bundlePath,
		"--http-proxy", httpProxy, "--admin", adminAddr,
		"--workload-api", filepath.Join(o.StateDir, "sockets", w.Key.Namespace+"."+w.Key.Name+".sock"),
	}
	if o.CertTTL > 0 {
		args = append(args, "--cert-ttl", o.CertTTL.String())
	}
	for k, v := range w.Labels {
		args = append(args, "--label", k+"="+v)
	}
	var first, firstApp string
	for i, p := range spec.Ports {
		in, err := FreeAddr()
		if err != nil {
			return err
		}
		appAddr, err := FreeAddr()
		if err != nil {
			return err
		}
		_, appPort, _ := net.SplitHostPort(appAddr)
		if i == 0 {
			first, firstApp = in, appAddr
			env = append(env, "PORT="+appPort)
		}
		if p.Name != "" {
			env = append(env, "PALISADE_PORT_"+envName(p.Name)+"="+appPort)
		}
		args = append(args, "--inbound", fmt.Sprintf("port=%d,name=%s,protocol=%s,listen=%s,app=%s", p.Number, p.Name, p.Protocol, in, appAddr))
	}
	logf, err := openLog(filepath.Join(o.StateDir, "logs", w.Key.Namespace+"."+w.Key.Name+".proxy.log"))
	if err != nil {
		return err
	}
	args = append(args, o.proxyFlags()...)
	cmd := exec.CommandContext(context.WithoutCancel(ctx), o.ProxyBin, args...)
	cmd.Env = append(os.Environ(), "PALISADE_JOIN_TOKEN="+token)
	sidecar, err := startProcess(w.Key.String()+" sidecar", cmd, logf, o.Log)
	if err != nil {
		return err
	}
	m.procs = append(m.procs, sidecar)
	if err := sidecar.waitFor(ctx, "ready", 30*time.Second, func() error { return httpOK("http://" + adminAddr + "/ready") }); err != nil {
		return err
	}

	socket := filepath.Join(o.StateDir, "sockets", w.Key.Namespace+"."+w.Key.Name+".sock")
	if err := m.startApp(ctx, w, r, spec, append(os.Environ(), env...), socket, firstApp, (*exec.Cmd).Start, httpOK); err != nil {
		return err
	}
	id, _ := spiffeid.FromSegments(td, "ns", w.Key.Namespace, "sa", w.ServiceAccount)
	m.rows = append(m.rows, row{name: w.Key.Name, ns: w.Key.Namespace, inbound: first, app: firstApp, id: id.String()})
	return nil
}

// startApp starts a workload's app with env (the caller's base and the
// ports' variables), the Workload API socket and spec.env, through start,
// and waits for spec.readiness on firstApp with probe.
func (m *Mesh) startApp(ctx context.Context, w *controlplane.Workload, r *config.Resource, spec *config.WorkloadSpec,
	env []string, socket, firstApp string, start func(*exec.Cmd) error, probe func(url string) error) error {
	bin, err := m.resolveCommand(spec.Command, r.Source.File)
	if err != nil {
		return fmt.Errorf("%s: %s %s: spec.command: %w", r.Source, r.Kind, w.Key, err)
	}
	appCmd := exec.Command(bin, spec.Args...)
	appCmd.Dir = spec.Dir
	if appCmd.Dir == "" {
		appCmd.Dir = filepath.Dir(r.Source.File)
	}
	appCmd.Env = append(env, "SPIFFE_ENDPOINT_SOCKET=unix://"+socket)
	for k, v := range spec.Env {
		appCmd.Env = append(appCmd.Env, k+"="+v)
	}
	applog, err := openLog(filepath.Join(m.opts.StateDir, "logs", w.Key.Namespace+"."+w.Key.Name+".log"))
	if err != nil {
		return err
	}
	appProc, err := startProcessWith(w.Key.String(), appCmd, applog, m.opts.Log, start)
	if err != nil {
		return err
	}
	m.procs = append(m.procs, appProc)
	if spec.Readiness != nil && spec.Readiness.HTTPGet != nil && firstApp != "" {
		u := "http://" + firstApp + spec.Readiness.HTTPGet.Path
		if err := appProc.waitFor(ctx, "ready", 30*time.Second, func() error { return probe(u) }); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mesh) resolveCommand(cmd, yamlFile string) (string, error) {
	if strings.Contains(cmd, "/") {
		if !filepath.IsAbs(cmd) {
			cmd = filepath.Join(filepath.Dir(yamlFile), cmd)
		}
		return cmd, nil
	}
	if m.opts.BinDir != "" {
		p := filepath.Join(m.opts.BinDir, cmd)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return exec.LookPath(cmd)
}

// PrintTable writes the workloads and where to reach them.
func (m *Mesh) PrintTable(w io.Writer) {
	modes := map[string]string{}
	for _, s := range m.daemon.Push.Status() {
		modes[s.Namespace+"/"+s.Name] = s.MTLSMode
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tNAMESPACE\tSIDECAR (mTLS)\tAPP\tSPIFFE ID\tMTLS")
	for _, r := range m.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.ns, r.inbound, r.app, r.id, modes[r.ns+"/"+r.name])
	}
	tw.Flush()
	if len(m.urls) > 0 {
		fmt.Fprintln(w, "\nIngress gateway (open in a browser):")
		for _, u := range m.urls {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	fmt.Fprintf(w, "\ncontrol plane: %s (admin http://%s/api/status)\nlogs: %s\n", m.daemon.GRPCAddr(), m.daemon.AdminAddr(), filepath.Join(m.opts.StateDir, "logs"))
	fmt.Fprintf(w, "dashboard: http://%s/dashboard/ (palisade dashboard opens it)\n", m.daemon.AdminAddr())
	if m.iso != nil {
		m.iso.printHelp(w)
	}
}

// Daemon is the in-process control plane.
func (m *Mesh) Daemon() *controlplane.Daemon { return m.daemon }

// Stop ends every process, apps first, then sidecars, then the control
// plane, and removes the state file.
func (m *Mesh) Stop() {
	m.stopBundle()
	for i := len(m.procs) - 1; i >= 0; i-- {
		m.procs[i].terminate(5 * time.Second)
	}
	m.daemon.Stop()
	if err := m.iso.destroy(); err != nil && m.opts.Log != nil {
		m.opts.Log.Error("localmesh: remove the isolated network", "err", err)
	}
	os.Remove(filepath.Join(m.opts.StateDir, StateFile))
}

// Exited returns the names of processes that have died.
func (m *Mesh) Exited() []string {
	var out []string
	for _, p := range m.procs {
		if p.exited() {
			out = append(out, p.name)
		}
	}
	return out
}

// FreeAddr is a free 127.0.0.1 address for a child process to listen
// on. It is picked below the kernel's ephemeral range where there is
// room, so that no connection or port-0 listener made meanwhile (by the
// mesh or anything else on the machine) is handed it before the child
// binds it; otherwise the kernel picks.
func FreeAddr() (string, error) {
	if lo := ephemeralLow(); lo > 20000 {
		for range 100 {
			port := 10000 + rand.IntN(lo-10000)
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				ln.Close()
				return ln.Addr().String(), nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("localmesh: allocate port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0
// where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func envName(s string) string {
	return strings.ToUpper(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s))
}

func httpOK(u string) error {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return errors.New(resp.Status)
	}
	return nil
}

// writeBundle rewrites path with the CA's trust bundle on every change
// until ctx ends; the file is replaced whole, never seen half written.
func writeBundle(ctx context.Context, auth *ca.Authority, path string, log *slog.Logger) {
	updates, cancel := auth.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-updates:
			tmp := path + ".tmp"
			err := os.WriteFile(tmp, b.MarshalPEM(), 0o644)
			if err == nil {
				err = os.Rename(tmp, path)
			}
			if err != nil && log != nil {
				log.Error("localmesh: write the trust bundle", "path", path, "err", err)
			}
		}
	}
}
