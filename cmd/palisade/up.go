package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"palisade.dev/palisade/examples/workshop"
	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/capture"
	"palisade.dev/palisade/internal/localmesh"
)

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", ".palisade", "state directory: CA, logs, sockets")
	grpcAddr := fs.String("control-plane", "127.0.0.1:15012", "control plane listener (CA and config push)")
	adminAddr := fs.String("admin", "127.0.0.1:15014", "control plane admin API listener")
	certTTL := fs.Duration("cert-ttl", 0, "workload certificate lifetime (default 24h)")
	maxTTL := fs.Duration(flagMaxWorkloadTTL, 0, fmt.Sprintf("longest workload certificate lifetime the CA issues; a longer request is refused (env %s; default %s)", envMaxWorkloadTTL, ca.DefaultMaxWorkloadTTL))
	gwOffset := fs.Int("gateway-port-offset", 8000, "the ingress gateway listens for Gateway ports below 1024 at port+offset (80 on 8080)")
	grace := fs.Duration("root-rotation-grace", 0, "how long a new root is trusted before it issues (default 1h)")
	verbose := fs.Bool("v", false, "log at debug level, the proxies too")
	allowRoot := fs.Bool("allow-root", false, "let the proxies run as root (palisade-proxy refuses to otherwise)")
	isolate := fs.Bool("isolate", false, "run each workload in a network namespace of its own, its traffic captured by iptables (needs root)")
	hosts := fs.Int("hosts", 1, "with --isolate: spread the workloads over this many host namespaces")
	backend := fs.String("iptables-backend", "auto", "with --isolate: iptables backend for the capture rules: auto, nft or legacy")
	dash := addDashboardFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: palisade up [flags] [DIR]\n\nRuns the mesh in DIR (default: the workshop sample app) on this machine.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2, err: nil}
	}
	if err := dash.check(); err != nil {
		return exitError{code: 2, err: err}
	}
	if fs.NArg() > 1 {
		return exitError{code: 2, err: fmt.Errorf("up takes one directory, got %q", fs.Args())}
	}
	// Under --isolate the sidecars run as uid 1337, never as root.
	if os.Geteuid() == 0 && !*allowRoot && !*isolate {
		return exitError{code: 2, err: fmt.Errorf("up: running as root, and palisade-proxy refuses to: run as a user, or pass --allow-root")}
	}
	maxCertTTL, err := durationFlagOrEnv(fs, flagMaxWorkloadTTL, *maxTTL, envMaxWorkloadTTL, os.Getenv)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	var iso *localmesh.Isolate
	if *isolate {
		if *hosts < 1 {
			return exitError{code: 2, err: fmt.Errorf("--hosts %d: at least 1", *hosts)}
		}
		if _, err := capture.ParseBackend(*backend); err != nil {
			return exitError{code: 2, err: fmt.Errorf("--iptables-backend: %w", err)}
		}
		iso = &localmesh.Isolate{Hosts: *hosts, IPTablesBackend: *backend}
	} else if *hosts != 1 {
		return exitError{code: 2, err: fmt.Errorf("--hosts needs --isolate")}
	}
	dir := fs.Arg(0)
	if dir == "" {
		d, err := defaultMeshDir(*state)
		if err != nil {
			return err
		}
		dir = d
	}
	level, proxyLevel := slog.LevelInfo, ""
	if *verbose {
		level, proxyLevel = slog.LevelDebug, "debug"
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	self, err := os.Executable()
	if err != nil {
		return err
	}
	binDir := filepath.Dir(self)
	absState, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Starting the mesh in %s ...\n", dir)
	m, err := localmesh.Up(ctx, localmesh.Options{
		Dir: dir, StateDir: absState, ProxyBin: filepath.Join(binDir, "palisade-proxy"), BinDir: binDir,
		GRPCListen: *grpcAddr, AdminListen: *adminAddr, CertTTL: *certTTL, MaxCertTTL: maxCertTTL, RotationGrace: *grace, GatewayPortOffset: *gwOffset, Isolate: iso, AllowRoot: *allowRoot, ProxyLogLevel: proxyLevel, Log: log, Out: stdout,
		Dashboard: dash.options(),
	})
	if err != nil {
		return err
	}
	defer m.Stop()
	fmt.Fprintln(stdout)
	m.PrintTable(stdout)
	fmt.Fprintf(stdout, "\nWatching %s: policy changes apply without a restart. Ctrl-C stops everything.\n", dir)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	reported := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "\nStopping ...")
			return nil
		case <-tick.C:
			for _, name := range m.Exited() {
				if !reported[name] {
					reported[name] = true
					fmt.Fprintf(stderr, "palisade: %s exited; see its log in %s\n", name, filepath.Join(absState, "logs"))
				}
			}
		}
	}
}

// defaultMeshDir is the workshop sample: ./examples/workshop when run from
// a checkout, else the copy embedded in the binary, written to the state
// directory.
func defaultMeshDir(state string) (string, error) {
	if fi, err := os.Stat(filepath.Join("examples", "workshop", "mesh.yaml")); err == nil && !fi.IsDir() {
		return filepath.Join("examples", "workshop"), nil
	}
	dir := filepath.Join(state, "workshop")
	if err := workshop.WriteConfig(dir); err != nil {
		return "", err
	}
	return dir, nil
}
