package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/localmesh"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", ".palisade", "state directory of the running mesh")
	admin := fs.String("admin", "", "control plane admin address (default: from the state directory)")
	out := fs.String("o", "table", "output: table or json")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if *out != "table" && *out != "json" {
		return exitError{code: 2, err: fmt.Errorf("-o %q: table or json", *out)}
	}
	var st struct {
		TrustDomain string                        `json:"trustDomain"`
		Workloads   []controlplane.WorkloadStatus `json:"workloads"`
	}
	if err := adminGet(ctx, *state, *admin, "/api/status", &st); err != nil {
		return err
	}
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st.Workloads)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNAMESPACE\tINBOUND\tAPP\tSPIFFE ID\tMTLS\tCONNECTED")
	for _, w := range st.Workloads {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", w.Name, w.Namespace, w.InboundAddress, w.AppAddress, w.SpiffeID, w.MTLSMode, w.Connected)
	}
	return tw.Flush()
}

// socketExists reports whether path is a unix socket.
func socketExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// privilegedPost calls an action on the control plane's privileged unix
// socket.
func privilegedPost(ctx context.Context, sock, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://control-plane"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("control plane: %s: %s", resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// adminGet reads one admin API document of the running control plane.
func adminGet(ctx context.Context, state, admin, path string, v any) error {
	if admin == "" {
		b, err := os.ReadFile(filepath.Join(state, localmesh.StateFile))
		if err != nil {
			return fmt.Errorf("no running mesh found in %s (start one with 'palisade up', or pass --admin): %w", state, err)
		}
		var s localmesh.State
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(state, localmesh.StateFile), err)
		}
		admin = s.AdminAddress
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("control plane: %s: %s", resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
