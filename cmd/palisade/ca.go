package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/localmesh"
)

const caUsage = `usage: palisade ca <command> [flags]

commands:
  init         make a self-signed root and intermediate in the state directory
  show         print the roots, intermediates and their expiry
  rotate-root  add a new root; it issues after --grace, the old root leaves
               the bundle once every certificate it signed has expired
`

// runCA implements `palisade ca init|show|rotate-root`.
func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, caUsage)
		return exitError{code: 2, err: errors.New("ca: a command is required")}
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("palisade ca "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", ".palisade/ca", "CA state directory")
	tdFlag := fs.String("trust-domain", "", "trust domain (init: default cluster.local; otherwise read from the state)")
	keyType := fs.String("key-type", "ec", "CA key type: ec, rsa2048 or rsa4096 (init, rotate-root)")
	grace := fs.Duration("grace", ca.DefaultRotationGrace, "rotate-root: time before the new root starts issuing")
	output := fs.String("o", "text", "show: output format, text or json")
	admin := fs.String("admin", "", "show: admin address of a running control plane (e.g. 127.0.0.1:15014)")
	switch cmd {
	case "init", "show", "rotate-root":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, caUsage)
		return nil
	default:
		fmt.Fprint(stderr, caUsage)
		return exitError{code: 2, err: fmt.Errorf("ca: unknown command %q", cmd)}
	}
	if err := fs.Parse(rest); err != nil {
		return exitError{code: 2, err: err}
	}
	if fs.NArg() != 0 {
		return exitError{code: 2, err: fmt.Errorf("ca %s: unexpected arguments %v", cmd, fs.Args())}
	}
	kt, err := ca.ParseKeyType(*keyType)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	if *output != "text" && *output != "json" {
		return exitError{code: 2, err: fmt.Errorf("ca show: -o must be text or json, not %q", *output)}
	}
	if cmd == "show" {
		// A running mesh owns the CA: show its live view. The state on
		// disk rounds each root's last expiry up (ca.Options.PersistSlack),
		// so an old root would seem to linger, and opening it here would
		// write the state under the running control plane.
		if sock := filepath.Join(filepath.Dir(*state), localmesh.PrivilegedSocket); *admin != "" || socketExists(sock) {
			var raw json.RawMessage
			err := adminGet(ctx, filepath.Dir(*state), *admin, "/api/ca", &raw)
			switch {
			case err != nil && *admin != "":
				return err
			case err == nil:
				if done, err := printLiveCA(stdout, raw, *output); done || err != nil {
					return err
				}
			}
		}
	}
	td, err := caTrustDomain(cmd, *tdFlag, *state)
	if err != nil {
		return err
	}
	opts := ca.Options{TrustDomain: td, KeyType: kt, RotationGrace: *grace}
	switch cmd {
	case "init":
		a, err := ca.Init(*state, opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "CA initialised in %s for trust domain %s\n\n", *state, td.Name())
		return printCAStatus(stdout, a.Status(), "text")
	case "show":
		a, err := ca.Open(*state, opts)
		if err != nil {
			return err
		}
		return printCAStatus(stdout, a.Status(), *output)
	default: // rotate-root
		if sock := filepath.Join(filepath.Dir(*state), localmesh.PrivilegedSocket); socketExists(sock) {
			// The running control plane owns the CA: rotate there, so the
			// new root is pushed to every proxy at once.
			var r ca.RootStatus
			if err := privilegedPost(ctx, sock, "/api/ca/rotate-root?keyType="+string(kt), &r); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "new root %d (sha256 %s) joined the trust bundle of the running mesh; it issues from %s\n",
				r.ID, r.Root.SHA256Fingerprint, r.ActiveAt.Format(time.RFC3339))
			return nil
		}
		a, err := ca.Open(*state, opts)
		if err != nil {
			return err
		}
		r, err := a.RotateRoot(kt)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new root %d (sha256 %s) joined the trust bundle; it issues from %s\n\n",
			r.ID, r.Root.SHA256Fingerprint, r.ActiveAt.Format(time.RFC3339))
		return printCAStatus(stdout, a.Status(), "text")
	}
}

func caTrustDomain(cmd, flagValue, state string) (spiffeid.TrustDomain, error) {
	switch {
	case flagValue != "":
		td, err := spiffeid.TrustDomainFromString(flagValue)
		if err != nil {
			return td, exitError{code: 2, err: fmt.Errorf("ca: --trust-domain: %w", err)}
		}
		return td, nil
	case cmd == "init":
		return spiffeid.RequireTrustDomainFromString("cluster.local"), nil
	}
	return ca.StateTrustDomain(state)
}

func printCAStatus(w io.Writer, s ca.Status, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(w, "Mode:          %s\nTrust domain:  %s\nState:         %s\nBundle:        %d root(s)\n\n", s.Mode, s.TrustDomain, s.StateDir, s.BundleSize)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOT\tSTATE\tKEY\tROOT EXPIRES\tINTERMEDIATE EXPIRES\tISSUES FROM\tLAST ISSUED EXPIRY\tSHA256")
	for _, r := range s.Roots {
		last := "-"
		if !r.LastIssuedExpiry.IsZero() {
			last = r.LastIssuedExpiry.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.KeyType,
			r.Root.NotAfter.Format(time.RFC3339), r.IntermediateNotAfter.Format(time.RFC3339),
			r.ActiveAt.Format(time.RFC3339), last, r.Root.SHA256Fingerprint[:16])
	}
	return tw.Flush()
}

// externalCAStatus is the admin API's view of an external CA.
type externalCAStatus struct {
	Mode        string              `json:"mode"`
	TrustDomain string              `json:"trustDomain"`
	Issuer      string              `json:"issuer,omitempty"`
	Roots       []identity.RootInfo `json:"roots"`
	BundleSize  int                 `json:"bundleSize"`
}

// printLiveCA prints a running control plane's CA; done is false when the
// answer is not one to print (then the state on disk is shown).
func printLiveCA(w io.Writer, raw json.RawMessage, format string) (done bool, err error) {
	var ext externalCAStatus
	if err := json.Unmarshal(raw, &ext); err != nil || ext.Mode == "" {
		return false, err
	}
	if ext.Mode != "external" {
		var s ca.Status
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, err
		}
		return true, printCAStatus(w, s, format)
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(ext)
	}
	fmt.Fprintf(w, "Mode:          external\nTrust domain:  %s\nSigned by:     %s\nBundle:        %d root(s)\n\n", ext.TrustDomain, orDash(ext.Issuer), ext.BundleSize)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOT\tSUBJECT\tEXPIRES\tSHA256")
	for i, r := range ext.Roots {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, r.Subject, r.NotAfter.Format(time.RFC3339), r.SHA256Fingerprint[:min(16, len(r.SHA256Fingerprint))])
	}
	return true, tw.Flush()
}
