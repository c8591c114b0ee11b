package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
)

// certManagerFlags select cert-manager as the CA (--ca cert-manager), in
// istio-csr's role; the flag names are istio-csr's where it has them.
type certManagerFlags struct {
	issuerRef, issuerGroup, namespace, rootCAFile string
	maxDuration                                   time.Duration
	preserve                                      bool
	wait                                          time.Duration
}

func addCertManagerFlags(fs *flag.FlagSet) *certManagerFlags {
	f := &certManagerFlags{}
	fs.StringVar(&f.issuerRef, "issuer-ref", "", "with --ca cert-manager: the issuer that signs, KIND/NAME (e.g. Issuer/istio-ca, ClusterIssuer/aws-pca)")
	fs.StringVar(&f.issuerGroup, "issuer-group", "cert-manager.io", "with --ca cert-manager: the issuer's API group (e.g. awspca.cert-manager.io)")
	fs.StringVar(&f.namespace, "certificate-namespace", "istio-system", "with --ca cert-manager: namespace of the CertificateRequests (and of an Issuer)")
	fs.StringVar(&f.rootCAFile, "root-ca-file", "", "with --ca cert-manager: PEM of the mesh's root(s); default: the issuer's CA, as it signs (re-read every minute)")
	fs.DurationVar(&f.maxDuration, "max-client-certificate-duration", time.Hour, "with --ca cert-manager: longest workload certificate; longer requests are capped")
	fs.BoolVar(&f.preserve, "preserve-certificate-requests", false, "with --ca cert-manager: keep finished CertificateRequests instead of deleting them")
	fs.DurationVar(&f.wait, "certificate-request-timeout", 30*time.Second, "with --ca cert-manager: how long one CertificateRequest may take to be signed")
	return f
}

// signer builds the cert-manager signer and, without a root file, learns
// the roots from the issuer's first answer.
func (f *certManagerFlags) signer(ctx context.Context, td spiffeid.TrustDomain, kubeconfig string, defTTL time.Duration, log *slog.Logger) (*ca.CertManagerSigner, error) {
	kind, name, ok := strings.Cut(f.issuerRef, "/")
	if !ok || kind == "" || name == "" {
		return nil, exitError{code: 2, err: fmt.Errorf("--ca cert-manager: --issuer-ref %q: want KIND/NAME, e.g. Issuer/istio-ca", f.issuerRef)}
	}
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig == "" {
		return nil, exitError{code: 2, err: errors.New("--ca cert-manager: --cert-manager-kubeconfig (or KUBECONFIG) is required")}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--cert-manager-kubeconfig %s: %w", kubeconfig, err)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--cert-manager-kubeconfig %s: %w", kubeconfig, err)
	}
	var roots *identity.Bundle
	if f.rootCAFile != "" {
		if roots, err = readRoots(td, f.rootCAFile); err != nil {
			return nil, err
		}
	}
	s, err := ca.NewCertManagerSigner(ca.CertManagerOptions{
		TrustDomain: td, Client: client,
		Issuer:    ca.IssuerRef{Kind: kind, Name: name, Group: f.issuerGroup},
		Namespace: f.namespace, Roots: roots,
		DefaultTTL: orDefault(defTTL, f.maxDuration), MaxTTL: f.maxDuration,
		Wait: f.wait, Preserve: f.preserve, Log: log,
	})
	if err != nil {
		return nil, exitError{code: 2, err: err}
	}
	if roots == nil {
		log.Info("asking the issuer for the mesh's roots", "issuer", s.Issuer())
		if err := s.Start(ctx, identity.ControlPlaneID(td)); err != nil {
			return nil, err
		}
	} else {
		go f.watchRoots(ctx, td, s, log)
	}
	return s, nil
}

func readRoots(td spiffeid.TrustDomain, file string) (*identity.Bundle, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--root-ca-file: %w", err)
	}
	roots, err := identity.ParseBundlePEM(td, b)
	if err != nil {
		return nil, fmt.Errorf("--root-ca-file %s: %w", file, err)
	}
	return roots, nil
}

// watchRoots re-reads the root file every minute; a changed, valid file
// becomes the trust bundle, a broken one leaves the last good in force.
func (f *certManagerFlags) watchRoots(ctx context.Context, td spiffeid.TrustDomain, s *ca.CertManagerSigner, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		roots, err := readRoots(td, f.rootCAFile)
		if err != nil {
			log.Error("root file refused, the last good trust bundle stays in force", "err", err)
			continue
		}
		s.SetRoots(roots)
	}
}
