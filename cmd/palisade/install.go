package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"k8s.io/client-go/tools/clientcmd"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/install"
)

// runInstall implements `palisade install`: print every manifest, or with
// --apply apply them with server-side apply.
func runInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	v := install.Defaults()
	fs := flag.NewFlagSet("palisade install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&v.Namespace, "namespace", v.Namespace, "namespace of the control plane")
	fs.StringVar(&v.Image, "image", "", "the palisade image the control plane runs (required)")
	fs.StringVar(&v.ProxyImage, "proxy-image", "", "the palisade-proxy image injected into pods (required)")
	fs.StringVar(&v.Revision, "revision", v.Revision, "revision: namespaces labelled istio.io/rev=REVISION are injected too")
	fs.StringVar(&v.WebhookURL, "webhook-url", "", "call the webhooks at this https URL instead of through the Service (a control plane outside the cluster)")
	replicas := fs.Int("replicas", int(v.Replicas), "control plane replicas")
	bundleFile := fs.String("ca-bundle", "", "PEM file verifying the webhooks' serving certificate (default: the roots of the CA in --state)")
	state := fs.String("state", ".palisade", "state directory holding the mesh CA (ca/), whose roots are the webhooks' CA bundle")
	apply := fs.Bool("apply", false, "apply the manifests with server-side apply (field manager \"palisade\") instead of printing them")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for --apply (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError{code: 2, err: err}
	}
	if fs.NArg() != 0 {
		return exitError{code: 2, err: fmt.Errorf("install: unexpected arguments %q", fs.Args())}
	}
	v.Replicas = int32(*replicas)
	bundle, err := caBundle(*bundleFile, *state)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	v.CABundle = bundle
	if err := v.Validate(); err != nil {
		return exitError{code: 2, err: err}
	}
	if !*apply {
		out, err := install.Render(v)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("install: kubeconfig: %w", err)
	}
	return install.Apply(ctx, cfg, v, stdout)
}

// caBundle reads the PEM file given, or the roots of the CA kept in
// state/ca.
func caBundle(file, state string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("install: --ca-bundle: %w", err)
		}
		return b, nil
	}
	dir := state + "/ca"
	td, err := ca.StateTrustDomain(dir)
	if err != nil {
		return nil, fmt.Errorf("install: no --ca-bundle, and no CA in %s (run `palisade ca init` or give --ca-bundle): %w", dir, err)
	}
	a, err := ca.Open(dir, ca.Options{TrustDomain: td, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	return a.Bundle().MarshalPEM(), nil
}
