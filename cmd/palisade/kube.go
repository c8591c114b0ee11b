package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/install"
	"palisade.dev/palisade/internal/kube"
)

// kubeFlags select Kubernetes mode: --kubeconfig PATH, or --kubernetes
// for the in-cluster config of a pod.
type kubeFlags struct {
	kubeconfig string
	inCluster  bool
}

func addKubeFlags(fs *flag.FlagSet) *kubeFlags {
	k := &kubeFlags{}
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "read config and workloads from the Kubernetes API server of this kubeconfig instead of a directory")
	fs.BoolVar(&k.inCluster, "kubernetes", false, "read config and workloads from the Kubernetes API server, with the in-cluster config of the pod")
	return k
}

func (k *kubeFlags) enabled() bool { return k.kubeconfig != "" || k.inCluster }

// clients returns the typed and dynamic clients of the selected cluster.
func (k *kubeFlags) clients() (kubernetes.Interface, dynamic.Interface, error) {
	var cfg *rest.Config
	var err error
	if k.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", k.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes: %w", err)
	}
	return client, dyn, nil
}

// kubeMode is what Kubernetes mode adds to a control plane.
type kubeMode struct {
	client kubernetes.Interface
	source *kube.Source
	roots  *kube.RootPublisher
	// hooks, when the admission webhooks serve a certificate from the
	// mesh CA, keeps their configurations' caBundle on the mesh roots.
	hooks *kube.WebhookBundles
}

// patchWebhookBundles makes publishRoots keep the caBundle of the
// webhook configurations palisade install writes.
func (m *kubeMode) patchWebhookBundles(log *slog.Logger) {
	m.hooks = kube.NewWebhookBundles(m.client, []string{install.InjectorName}, []string{install.ValidatorName}, log)
}

// startKube starts the API server source and waits for its first
// snapshot, which decides the trust domain.
func startKube(ctx context.Context, k *kubeFlags, log *slog.Logger) (*kubeMode, *config.Snapshot, error) {
	client, dyn, err := k.clients()
	if err != nil {
		return nil, nil, err
	}
	src := kube.NewSource(client, dyn, log)
	snaps, stop := src.Subscribe()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx) }()
	select {
	case snap := <-snaps:
		return &kubeMode{client: client, source: src, roots: kube.NewRootPublisher(client, log)}, snap, nil
	case err := <-errc:
		if err == nil {
			err = ctx.Err()
		}
		return nil, nil, fmt.Errorf("kubernetes: %w", err)
	}
}

// options fills the daemon options of Kubernetes mode.
func (m *kubeMode) options(o *controlplane.DaemonOptions, td spiffeid.TrustDomain) {
	o.Source = m.source
	o.Registry = m.source.Registry()
	o.ExactCSRIdentity = true
	o.Authenticators = append(o.Authenticators, &kube.TokenReviewer{Client: m.client, TrustDomain: td})
}

// publishRoots keeps istio-ca-root-cert, and the webhooks' caBundle where
// asked, current with the daemon's bundle.
func (m *kubeMode) publishRoots(ctx context.Context, d *controlplane.Daemon) {
	set := func(pem []byte) {
		m.roots.SetBundle(pem)
		if m.hooks != nil {
			m.hooks.SetBundle(pem)
		}
	}
	set(d.Signer.Bundle().MarshalPEM())
	go m.roots.Run(ctx)
	if m.hooks != nil {
		go m.hooks.Run(ctx)
	}
	// The mesh CA (root rotation) and cert-manager (the issuer's CA) both
	// announce new roots.
	sub, ok := d.Signer.(controlplane.BundleSubscriber)
	if !ok {
		return
	}
	bundles, cancel := sub.Subscribe()
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-bundles:
				set(b.MarshalPEM())
			}
		}
	}()
}

// loadCluster reads what is in the cluster once, for analyze.
func loadCluster(ctx context.Context, k *kubeFlags) (*config.Snapshot, error) {
	client, dyn, err := k.clients()
	if err != nil {
		return nil, err
	}
	return kube.LoadAll(ctx, client, dyn)
}

// podKey reads istioctl's NAME.NAMESPACE (the namespace after the last
// dot, as pod names may hold dots; "default" without one).
func podKey(s string) controlplane.WorkloadKey {
	if i := strings.LastIndexByte(s, '.'); i > 0 && i < len(s)-1 {
		return controlplane.WorkloadKey{Namespace: s[i+1:], Name: s[:i]}
	}
	return controlplane.WorkloadKey{Namespace: "default", Name: s}
}

// parseTarget reads NAMESPACE/NAME, or a pod as istioctl names it,
// NAME.NAMESPACE.
func parseTarget(s string) (controlplane.WorkloadKey, error) {
	if strings.Contains(s, "/") || s == "" {
		return controlplane.ParseWorkloadKey(s)
	}
	return podKey(s), nil
}

// loadClusterWorkloads reads the config in force and the workloads from
// the cluster; objects that fail validation are left out, as the control
// plane leaves them out.
func loadClusterWorkloads(ctx context.Context, k *kubeFlags) (*config.Snapshot, []*controlplane.Workload, error) {
	client, dyn, err := k.clients()
	if err != nil {
		return nil, nil, err
	}
	snap, err := kube.LoadAll(ctx, client, dyn)
	if snap == nil {
		return nil, nil, err
	}
	ws, err := kube.ListWorkloads(ctx, client)
	if err != nil {
		return nil, nil, err
	}
	return snap, ws, nil
}

// describeInCluster explains a pod from what the API server holds, with
// the code the control plane runs.
func describeInCluster(ctx context.Context, k *kubeFlags, key controlplane.WorkloadKey) (*controlplane.Description, error) {
	snap, ws, err := loadClusterWorkloads(ctx, k)
	if err != nil {
		return nil, err
	}
	return controlplane.Describe(snap, ws, key)
}

var _ ca.Authenticator = (*kube.TokenReviewer)(nil)
