package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"palisade.dev/palisade/internal/dashboard"
	"palisade.dev/palisade/internal/localmesh"
)

func runDashboard(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade dashboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", ".palisade", "state directory of the running mesh")
	noBrowser := fs.Bool("no-browser", false, "print the URL only")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	st, err := readMeshState(*state)
	if err != nil {
		return err
	}
	url := "http://" + st.AdminAddress + "/dashboard/"
	if st.DashboardURL != "" {
		token, err := dashboard.LoadOrCreateToken(filepath.Join(*state, localmesh.DashboardTokenFile))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Dashboard (this machine): %s\n", url)
		url = st.DashboardURL + "/dashboard/login?token=" + token
		fmt.Fprintf(stdout, "Dashboard (exposed, the link carries the token of %s; keep it private): %s\n", filepath.Join(*state, localmesh.DashboardTokenFile), url)
	} else {
		fmt.Fprintf(stdout, "Dashboard: %s\n", url)
	}
	if *noBrowser {
		return nil
	}
	if opener := browserCommand(os.Getenv); opener != "" {
		cmd := exec.CommandContext(ctx, opener, url)
		if err := cmd.Start(); err == nil {
			go cmd.Wait() //nolint:errcheck // the browser outlives us
			return nil
		}
	}
	fmt.Fprintln(stdout, "No browser to open here: open the URL above in one.")
	return nil
}

// browserCommand is what opens a URL on this machine: $BROWSER, else
// xdg-open when a display is there; "" when nothing would.
func browserCommand(getenv func(string) string) string {
	if b := getenv("BROWSER"); b != "" {
		return strings.Fields(b)[0]
	}
	if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return ""
	}
	if p, err := exec.LookPath("xdg-open"); err == nil {
		return p
	}
	return ""
}

func readMeshState(state string) (*localmesh.State, error) {
	b, err := os.ReadFile(filepath.Join(state, localmesh.StateFile))
	if err != nil {
		return nil, exitError{code: 2, err: fmt.Errorf("no running mesh in %s (start one with palisade up): %w", state, err)}
	}
	var st localmesh.State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(state, localmesh.StateFile), err)
	}
	return &st, nil
}

// dashboardFlags are the dashboard's flags of up and control-plane.
type dashboardFlags struct {
	addr, cert, key string
	plaintext       bool
	records         int
}

func addDashboardFlags(fs *flag.FlagSet) *dashboardFlags {
	f := &dashboardFlags{}
	fs.StringVar(&f.addr, "dashboard-addr", "", "also serve the dashboard on this listener, behind the token in STATE/"+localmesh.DashboardTokenFile+" (the admin listener always serves it, on loopback)")
	fs.StringVar(&f.cert, "dashboard-tls-cert", "", "PEM certificate (chain) for --dashboard-addr to serve HTTPS with")
	fs.StringVar(&f.key, "dashboard-tls-key", "", "PEM private key of --dashboard-tls-cert")
	fs.BoolVar(&f.plaintext, "dashboard-insecure-plaintext", false, "allow --dashboard-addr on a non-loopback address without TLS (the token then crosses the network in the clear)")
	fs.IntVar(&f.records, "dashboard-records", dashboard.DefaultRecordsPerWorkload, "recent requests the dashboard keeps per workload (about 1 KiB each)")
	return f
}

func (f *dashboardFlags) check() error {
	if f.records <= 0 {
		return fmt.Errorf("--dashboard-records %d: must be above 0", f.records)
	}
	if f.addr == "" && (f.cert != "" || f.key != "" || f.plaintext) {
		return fmt.Errorf("--dashboard-tls-cert, --dashboard-tls-key and --dashboard-insecure-plaintext apply to --dashboard-addr, which is not set")
	}
	if (f.cert == "") != (f.key == "") {
		return fmt.Errorf("--dashboard-tls-cert and --dashboard-tls-key go together")
	}
	if f.addr != "" && f.cert == "" && !f.plaintext && !dashboard.IsLoopback(f.addr) {
		return fmt.Errorf("--dashboard-addr %s is not a loopback address: give --dashboard-tls-cert and --dashboard-tls-key, or --dashboard-insecure-plaintext to send its token in the clear", f.addr)
	}
	return nil
}

func (f *dashboardFlags) options() dashboard.AttachOptions {
	return dashboard.AttachOptions{Options: dashboard.Options{RecordsPerWorkload: f.records}, Addr: f.addr,
		CertFile: f.cert, KeyFile: f.key, InsecurePlaintext: f.plaintext}
}
