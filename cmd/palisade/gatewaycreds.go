package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"palisade.dev/palisade/internal/credential"
)

// runGatewayCredentials keeps a gateway's --credentials-dir filled from the
// Kubernetes Secrets of its namespace (credentialName, as Istio resolves
// it), for the proxy, which does not talk to the API server itself.
func runGatewayCredentials(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade gateway-credentials", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the Kubernetes API server (default $KUBECONFIG)")
	namespace := fs.String("namespace", "", "the gateway's namespace, whose Secrets hold its credentials (required)")
	dir := fs.String("dir", "", "the gateway's --credentials-dir to keep current (required)")
	var names stringList
	fs.Var(&names, "credential", "a credentialName to deliver, a Secret of the namespace (repeatable, at least one)")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if *namespace == "" || *dir == "" || len(names) == 0 {
		return exitError{code: 2, err: errors.New("gateway-credentials: --namespace, --dir and at least one --credential are required")}
	}
	if *kubeconfig == "" {
		*kubeconfig = os.Getenv("KUBECONFIG")
	}
	if *kubeconfig == "" {
		return exitError{code: 2, err: errors.New("gateway-credentials: --kubeconfig (or KUBECONFIG) is required")}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	s := &credential.Sync{Client: client, Namespace: *namespace, Dir: *dir, Names: names, Log: log}
	return s.Run(ctx)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
