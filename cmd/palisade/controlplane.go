package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/dashboard"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/inject"
	"palisade.dev/palisade/internal/localmesh"
)

func runControlPlane(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade control-plane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", "", "directory of YAML to serve (required)")
	state := fs.String("state", ".palisade", "state directory holding the CA (ca/)")
	cacerts := fs.String("cacerts", "", "use a plug-in intermediate from this directory (Istio's cacerts layout) instead of a self-signed root")
	cacertsOptional := fs.Bool("cacerts-optional", false, "with --cacerts: a directory without ca-cert.pem (an optional cacerts Secret not created) falls back to the self-signed root in --state, as istiod does")
	cfsslURL := fs.String("external-ca-cfssl", "", "sign with an external CA through CFSSL's remote signer API at this URL")
	cfsslChain := fs.String("external-ca-chain", "", "external CA: PEM of its signing certificate and intermediates")
	cfsslRoots := fs.String("external-ca-roots", "", "external CA: PEM of the root(s) its chain leads to (the mesh's trust bundle)")
	cfsslKey := fs.String("external-ca-auth-key-file", "", "external CA: file holding the hex HMAC key of the CFSSL profile (authsign)")
	cfsslProfile := fs.String("external-ca-profile", "", "external CA: CFSSL signing profile")
	grpcAddr := fs.String("listen", "127.0.0.1:15012", "listener for proxies: config push and the CA")
	adminAddr := fs.String("admin", "127.0.0.1:15014", "admin API listener")
	privSock := fs.String("privileged-socket", "", "unix socket for join tokens and root rotation (default STATE/control.sock)")
	vipRange := fs.String("service-vip-range", controlplane.DefaultVIPRange.String(), "CIDR services without an address of their own get a stable virtual IP from (Istio's auto-allocation range by default)")
	dashFlags := addDashboardFlags(fs)
	ttls := addWorkloadTTLFlags(fs)
	caKind := fs.String("ca", "", "who signs workload certificates: empty for the mesh's own CA (state dir, --cacerts or --external-ca-cfssl), or cert-manager (CertificateRequests to --issuer-ref)")
	cmKubeconfig := fs.String("cert-manager-kubeconfig", "", "with --ca cert-manager: kubeconfig of the API server where cert-manager runs (default $KUBECONFIG)")
	cm := addCertManagerFlags(fs)
	kf := addKubeFlags(fs)
	webhooks := inject.RegisterServeFlags(fs)
	injectCfg := inject.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	vips, err := netip.ParsePrefix(*vipRange)
	if err != nil {
		return exitError{code: 2, err: fmt.Errorf("--service-vip-range %q: %w", *vipRange, err)}
	}
	switch {
	case *dir == "" && !kf.enabled():
		return exitError{code: 2, err: fmt.Errorf("--config (or --kubeconfig, --kubernetes) is required")}
	case *dir != "" && kf.enabled():
		return exitError{code: 2, err: fmt.Errorf("--config and --kubeconfig/--kubernetes are exclusive: one config source")}
	}
	if err := dashFlags.check(); err != nil {
		return exitError{code: 2, err: err}
	}
	maxTTL, defTTL, err := ttls.resolve(fs, os.Getenv)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	if *cfsslURL != "" && (maxTTL != 0 || defTTL != 0) {
		return exitError{code: 2, err: fmt.Errorf("--%s and --%s (or %s, %s) apply to the mesh's own CA; with --external-ca-cfssl the CFSSL profile sets the lifetime",
			flagMaxWorkloadTTL, flagDefaultWorkloadTTL, envMaxWorkloadTTL, envDefaultWorkloadTTL)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	var snap *config.Snapshot
	var km *kubeMode
	if kf.enabled() {
		km, snap, err = startKube(ctx, kf, log)
	} else {
		snap, err = config.Load(*dir)
	}
	if err != nil {
		return err
	}
	td, err := spiffeid.TrustDomainFromString(snap.Mesh.GetTrustDomain())
	if err != nil {
		return fmt.Errorf("trustDomain: %w", err)
	}
	opts := ca.Options{TrustDomain: td, MaxTTL: maxTTL, DefaultTTL: defTTL, Logger: log}
	var auth *ca.Authority
	var signer ca.Signer
	switch {
	case *caKind != "" && *caKind != "cert-manager":
		return exitError{code: 2, err: fmt.Errorf("--ca %q: the only external CA named so is cert-manager", *caKind)}
	case *caKind == "cert-manager" && (*cfsslURL != "" || *cacerts != ""):
		return exitError{code: 2, err: fmt.Errorf("--ca cert-manager excludes --cacerts and --external-ca-cfssl")}
	case *caKind == "cert-manager":
		if maxTTL != 0 {
			return exitError{code: 2, err: fmt.Errorf("--%s (or %s) applies to the mesh's own CA; with --ca cert-manager use --max-client-certificate-duration", flagMaxWorkloadTTL, envMaxWorkloadTTL)}
		}
		if *cmKubeconfig == "" {
			*cmKubeconfig = kf.kubeconfig // the cluster the config comes from, unless told otherwise
		}
		if signer, err = cm.signer(ctx, td, *cmKubeconfig, defTTL, log); err != nil {
			return err
		}
	case *cfsslURL != "" && *cacerts != "":
		return exitError{code: 2, err: fmt.Errorf("--cacerts and --external-ca-cfssl are exclusive")}
	case *cfsslURL != "":
		if signer, err = cfsslSigner(td, *cfsslURL, *cfsslChain, *cfsslRoots, *cfsslKey, *cfsslProfile); err != nil {
			return err
		}
	case *cacerts != "" && (!*cacertsOptional || ca.HasCACerts(*cacerts)):
		auth, err = ca.LoadCACerts(*cacerts, opts)
	default:
		if *cacerts != "" {
			log.Warn("ca: no plug-in CA in --cacerts; using the self-signed root in the state directory, which lasts as long as that directory (in the installed Deployment, an emptyDir: plug in an intermediate as the Secret cacerts to keep one root across pods)", "cacerts", *cacerts, "state", *state)
		}
		auth, err = ca.OpenOrInit(filepath.Join(*state, "ca"), opts)
	}
	if err != nil {
		return err
	}
	if *privSock == "" {
		*privSock = filepath.Join(*state, localmesh.PrivilegedSocket)
	}
	o := controlplane.DaemonOptions{
		ConfigDir: *dir, Authority: auth, Signer: signer, GRPCListen: *grpcAddr, AdminListen: *adminAddr, PrivilegedSocket: *privSock, Log: log,
		ServiceVIPRange: vips,
	}
	if km != nil {
		km.options(&o, td)
	}
	d, err := controlplane.StartDaemon(ctx, o)
	if err != nil {
		return err
	}
	defer d.Stop()
	if km != nil {
		if webhooks.Listen != "" && webhooks.CertFile == "" && auth != nil {
			km.patchWebhookBundles(log)
		}
		km.publishRoots(ctx, d)
	}
	if webhooks.Listen != "" {
		var iss inject.CertIssuer
		if auth != nil {
			iss = auth
		}
		hooks, err := inject.Start(webhooks, *injectCfg, iss, d.Source.Current, log)
		if err != nil {
			return exitError{code: 2, err: err}
		}
		defer hooks.Close()
	}
	do := dashFlags.options()
	do.Log, do.TokenFile = log, filepath.Join(*state, localmesh.DashboardTokenFile)
	dash, err := dashboard.Attach(ctx, d, do)
	if err != nil {
		return err
	}
	log.Info("dashboard serving", "admin", "http://"+d.AdminAddr()+"/dashboard/", "exposed", dash.URL())
	log.Info("control plane serving", "grpc", d.GRPCAddr(), "admin", d.AdminAddr(), "trustDomain", td.Name())
	<-ctx.Done()
	return nil
}

func cfsslSigner(td spiffeid.TrustDomain, url, chainFile, rootsFile, keyFile, profile string) (ca.Signer, error) {
	if chainFile == "" || rootsFile == "" {
		return nil, exitError{code: 2, err: fmt.Errorf("--external-ca-cfssl needs --external-ca-chain and --external-ca-roots")}
	}
	chainPEM, err := os.ReadFile(chainFile)
	if err != nil {
		return nil, fmt.Errorf("--external-ca-chain: %w", err)
	}
	chain, err := identity.ParseCertificatesPEM(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("--external-ca-chain %s: %w", chainFile, err)
	}
	rootsPEM, err := os.ReadFile(rootsFile)
	if err != nil {
		return nil, fmt.Errorf("--external-ca-roots: %w", err)
	}
	bundle, err := identity.ParseBundlePEM(td, rootsPEM)
	if err != nil {
		return nil, fmt.Errorf("--external-ca-roots %s: %w", rootsFile, err)
	}
	var key string
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("--external-ca-auth-key-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	return ca.NewCFSSLSigner(ca.CFSSLOptions{URL: url, AuthKey: key, Profile: profile, Chain: chain, Bundle: bundle})
}
