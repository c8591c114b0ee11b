// Command cert-manager-controllers runs cert-manager's own controllers
// (github.com/cert-manager/cert-manager/pkg/controller, v1.21.2) against an
// API server, the way cert-manager's integration tests run them: the
// Issuer and ClusterIssuer controllers (CA and SelfSigned issuers), the
// CertificateRequest approver and signers, and the Certificate controllers
// that keep a Certificate's Secret issued and renewed. It stands in for the
// cert-manager controller image, whose cmd/controller module is not served.
//
//	cert-manager-controllers --kubeconfig FILE [--crds DIR] [--namespace NS]
//	    [--deny-uri REGEXP] [--cluster-resource-namespace NS]
//
// --crds applies the CustomResourceDefinitions of the module's deploy/crds
// (build.sh copies them beside the binary) before the controllers start.
// --deny-uri turns the approver into a policy: a CertificateRequest whose
// CSR carries a URI SAN matching REGEXP is Denied; every other one is
// approved by cert-manager's own approver.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"sync"
	"syscall"

	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Controllers register themselves with controllerpkg in init.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// controllers are the ones this program runs, by their registered names;
// the approver is added by run, wrapped in the deny policy when one is set.
var controllers = []string{
	"issuers",
	"clusterissuers",
	"certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned",
	"certificates-trigger",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-issuing",
	"certificates-readiness",
	"certificates-revision-manager",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controllers:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cert-manager-controllers", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server (required)")
	crds := fs.String("crds", "", "directory of cert-manager CRDs to apply first")
	namespace := fs.String("namespace", "", "namespace to watch (all when empty)")
	clusterNS := fs.String("cluster-resource-namespace", "cert-manager", "namespace of ClusterIssuer secrets")
	denyURI := fs.String("deny-uri", "", "deny CertificateRequests with a URI SAN matching this regexp")
	workers := fs.Int("workers", 5, "workers per controller")
	verbosity := fs.Int("v", 2, "log verbosity (cert-manager levels: 2 info, 4 debug)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	var deny *regexp.Regexp
	if *denyURI != "" {
		var err error
		if deny, err = regexp.Compile(*denyURI); err != nil {
			return fmt.Errorf("--deny-uri: %w", err)
		}
	}
	kfs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(kfs)
	_ = kfs.Set("v", fmt.Sprint(*verbosity))
	logf.InitLogs()
	ctx = logf.NewContext(ctx, logf.Log, "cert-manager")

	if *crds != "" {
		if err := applyCRDs(ctx, *kubeconfig, *crds); err != nil {
			return err
		}
	}

	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         *kubeconfig,
		Namespace:          *namespace,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: *clusterNS},
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: defaultMinBackoff,
			CertificateRequestMaximumBackoffDuration: defaultMaxBackoff,
		},
	})
	if err != nil {
		return err
	}
	var run []controllerpkg.Interface
	for _, name := range controllers {
		ctor, ok := controllerpkg.Known()[name]
		if !ok {
			return fmt.Errorf("controller %q is not registered", name)
		}
		c, err := ctor(factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		run = append(run, c)
	}
	approver, err := newApprover(factory, deny)
	if err != nil {
		return err
	}
	run = append(run, approver)

	// Every Context built by the factory shares its informer factories:
	// start them once the controllers have registered their informers.
	shared, err := factory.Build("informers")
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())

	var wg sync.WaitGroup
	errs := make(chan error, len(run))
	for _, c := range run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(*workers, ctx); err != nil {
				errs <- err
			}
		}()
	}
	fmt.Fprintln(os.Stderr, "cert-manager-controllers: running")
	wg.Wait()
	close(errs)
	return errors.Join(<-errs)
}
