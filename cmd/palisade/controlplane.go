package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/localmesh"
)

func runControlPlane(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade control-plane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", "", "directory of YAML to serve (required)")
	state := fs.String("state", ".palisade", "state directory holding the CA (ca/)")
	cacerts := fs.String("cacerts", "", "use a plug-in intermediate from this directory (Istio's cacerts layout) instead of a self-signed root")
	grpcAddr := fs.String("listen", "127.0.0.1:15012", "listener for proxies: config push and the CA")
	adminAddr := fs.String("admin", "127.0.0.1:15014", "admin API listener")
	privSock := fs.String("privileged-socket", "", "unix socket for join tokens and root rotation (default STATE/control.sock)")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if *dir == "" {
		return exitError{code: 2, err: fmt.Errorf("--config is required")}
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	snap, err := config.Load(*dir)
	if err != nil {
		return err
	}
	td, err := spiffeid.TrustDomainFromString(snap.Mesh.GetTrustDomain())
	if err != nil {
		return fmt.Errorf("trustDomain: %w", err)
	}
	opts := ca.Options{TrustDomain: td, Logger: log}
	var auth *ca.Authority
	if *cacerts != "" {
		auth, err = ca.LoadCACerts(*cacerts, opts)
	} else {
		auth, err = ca.OpenOrInit(filepath.Join(*state, "ca"), opts)
	}
	if err != nil {
		return err
	}
	if *privSock == "" {
		*privSock = filepath.Join(*state, localmesh.PrivilegedSocket)
	}
	d, err := controlplane.StartDaemon(ctx, controlplane.DaemonOptions{
		ConfigDir: *dir, Authority: auth, GRPCListen: *grpcAddr, AdminListen: *adminAddr, PrivilegedSocket: *privSock, Log: log,
	})
	if err != nil {
		return err
	}
	defer d.Stop()
	log.Info("control plane serving", "grpc", d.GRPCAddr(), "admin", d.AdminAddr(), "trustDomain", td.Name())
	<-ctx.Done()
	return nil
}
