package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"path/filepath"

	"palisade.dev/palisade/internal/localmesh"
)

// runJoinToken mints a one-time join token for a workload that an
// operator starts by hand (palisade up makes its own). It needs the
// control plane's privileged socket, so only its user can run it.
func runJoinToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade join-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", ".palisade", "state directory of the control plane")
	ns := fs.String("namespace", "", "the workload's namespace (required)")
	sa := fs.String("service-account", "default", "the workload's service account")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if *ns == "" {
		return exitError{code: 2, err: fmt.Errorf("--namespace is required")}
	}
	var out struct {
		Token string `json:"token"`
	}
	q := url.Values{"namespace": {*ns}, "serviceAccount": {*sa}}
	if err := privilegedPost(ctx, filepath.Join(*state, localmesh.PrivilegedSocket), "/api/join-token?"+q.Encode(), &out); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, out.Token)
	return err
}
