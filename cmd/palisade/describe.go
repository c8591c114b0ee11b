package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
)

func runDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade describe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", ".palisade", "state directory of the running mesh")
	admin := fs.String("admin", "", "control plane admin address (default: from the state directory)")
	dir := fs.String("f", "", "describe from a config directory instead of the running mesh")
	out := fs.String("o", "text", "output: text or json")
	kf := addKubeFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: palisade describe workload NAMESPACE/NAME [flags]\n       palisade describe pod NAME[.NAMESPACE] --kubeconfig PATH [flags]")
		fs.PrintDefaults()
	}
	if len(args) < 2 || (args[0] != "workload" && args[0] != "pod") {
		fs.Usage()
		return exitError{code: 2}
	}
	target := args[1]
	if err := fs.Parse(args[2:]); err != nil {
		return exitError{code: 2}
	}
	var key controlplane.WorkloadKey
	var err error
	if args[0] == "pod" {
		key = podKey(target)
	} else if key, err = controlplane.ParseWorkloadKey(target); err != nil {
		return exitError{code: 2, err: err}
	}
	var d *controlplane.Description
	if kf.enabled() {
		if d, err = describeInCluster(ctx, kf, key); err != nil {
			return err
		}
	} else if *dir != "" {
		snap, err := config.Load(*dir)
		if err != nil {
			return err
		}
		if d, err = controlplane.Describe(snap, controlplane.ConfigRegistry{}.Workloads(snap), key); err != nil {
			return err
		}
	} else {
		d = new(controlplane.Description)
		if err := adminGet(ctx, *state, *admin, "/api/describe?workload="+url.QueryEscape(key.String()), d); err != nil {
			return err
		}
	}
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	printDescription(stdout, d)
	return nil
}

func printDescription(w io.Writer, d *controlplane.Description) {
	fmt.Fprintf(w, "Workload:  %s\nIdentity:  %s\nService:   %s\n", d.Workload, d.SpiffeID, d.Service)
	if len(d.Labels) > 0 {
		var ls []string
		for k, v := range d.Labels {
			ls = append(ls, k+"="+v)
		}
		fmt.Fprintf(w, "Labels:    %s\n", strings.Join(ls, ", "))
	}
	fmt.Fprintln(w, "\nPeer authentication (inbound mTLS):")
	for _, p := range d.Ports {
		lvl := ""
		if p.PortLevel {
			lvl = " (port level)"
		}
		fmt.Fprintf(w, "  port %d/%s: %s, set by %s%s\n", p.Port, strings.ToLower(p.Protocol), p.Mode, p.SetBy, lvl)
	}
	fmt.Fprintln(w, "\nDestination rules for this service:")
	if len(d.DestinationRules) == 0 {
		fmt.Fprintln(w, "  none: callers use auto mTLS")
	}
	for _, dr := range d.DestinationRules {
		fmt.Fprintf(w, "  %s\n", dr)
	}
	fmt.Fprintln(w, "\nVirtual services routing to this service:")
	if len(d.VirtualServices) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, vs := range d.VirtualServices {
		fmt.Fprintf(w, "  %s\n", vs)
	}
	section := func(title string, ps []controlplane.PolicySummary) {
		fmt.Fprintf(w, "\n%s:\n", title)
		if len(ps) == 0 {
			fmt.Fprintln(w, "  none")
		}
		for _, p := range ps {
			fmt.Fprintf(w, "  %-40s %-8s %d rule(s), %s scope  (%s)\n", p.Name, p.Action, p.Rules, p.Scope, p.File)
		}
	}
	section("PeerAuthentication", d.PeerAuthn)
	section("RequestAuthentication", d.RequestAuthn)
	section("AuthorizationPolicy", d.Authorization)
}
