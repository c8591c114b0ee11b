// Command palisade is Palisade's CLI, control plane and local mesh.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintln(os.Stderr, "palisade:", ee.err)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "palisade:", err)
		os.Exit(1)
	}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"up", "run a whole mesh on this machine from a directory of YAML", runUp},
		{"status", "list the workloads of the running mesh", runStatus},
		{"describe", "explain a workload: mTLS per port, destination rules, policies", runDescribe},
		{"analyze", "validate config and find mistakes across resources", runAnalyze},
		{"convert", "convert legacy v1alpha1 authentication and RBAC to current Istio policies", runConvert},
		{"authz", "explain authorization decisions (authz check), replay recorded traffic against proposed policies (authz replay)", runAuthz},
		{"dashboard", "print the dashboard's URL and open it in a browser", runDashboard},
		{"proxy-config", "show a sidecar's certificate (secret) or JWT keys (jwt)", runProxyConfig},
		{"ca", "manage the mesh CA: init, show, rotate-root", runCA},
		{"control-plane", "run the control plane alone", runControlPlane},
		{"install", "print (or --apply) the manifests that run Palisade on Kubernetes", runInstall},
		{"join-token", "mint a one-time join token for a sidecar started by hand", runJoinToken},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: palisade COMMAND [ARGS]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'palisade COMMAND -h' for a command's flags.")
}
