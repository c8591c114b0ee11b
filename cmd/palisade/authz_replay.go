package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/dashboard"
	"palisade.dev/palisade/internal/replay"
	"palisade.dev/palisade/internal/telemetry"
)

func runAuthzReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("palisade authz replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("f", "", "proposed PeerAuthentication and AuthorizationPolicy YAML: a file or a directory (required unless --suggest)")
	since := fs.Duration("since", 15*time.Minute, "replay the requests recorded in this window")
	state := fs.String("state", ".palisade", "state directory of the running mesh")
	suggest := fs.Bool("suggest", false, "print the least-privilege AuthorizationPolicies that allow exactly the recorded traffic, instead")
	out := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if *dir == "" && !*suggest {
		return exitError{code: 2, err: fmt.Errorf("-f is required: the proposed policies")}
	}
	if *since <= 0 || *since > dashboard.MaxWindow {
		return exitError{code: 2, err: fmt.Errorf("--since %s: want a duration up to %s", *since, dashboard.MaxWindow)}
	}
	st, err := readMeshState(*state)
	if err != nil {
		return err
	}
	snap, err := config.Load(st.ConfigDir)
	if err != nil {
		return fmt.Errorf("the running mesh's config %s: %w", st.ConfigDir, err)
	}
	entries, err := fetchRecords(ctx, st.AdminAddress, *since)
	if err != nil {
		return err
	}
	workloads := controlplane.ConfigRegistry{}.Workloads(snap)
	if *suggest {
		y, err := replay.Suggest(workloads, entries)
		if err != nil {
			return err
		}
		_, err = stdout.Write(y)
		return err
	}
	files, err := config.ListFiles(*dir)
	if err != nil {
		return exitError{code: 2, err: fmt.Errorf("-f: %w", err)}
	}
	var proposed []*config.Resource
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		rs, err := dashboard.DecodeProposal(f, data)
		if err != nil {
			return exitError{code: 2, err: err}
		}
		proposed = append(proposed, rs...)
	}
	res, err := replay.Run(snap, replay.Overlay(snap, proposed), workloads, entries)
	if err != nil {
		return err
	}
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "Replayed %d recorded requests of the last %s against the config in force and against it with %s (%d skipped): %d would change.\n", res.Replayed, *since, *dir, res.Skipped, len(res.Changes))
	for _, c := range res.Changes {
		e := c.Entry
		src := e.SourcePrincipal
		if !e.MTLS || src == "" {
			src = "plaintext " + e.DownstreamRemote
		}
		what := e.Method + " " + e.Path
		if e.Protocol == telemetry.ProtocolTCP {
			what = fmt.Sprintf("TCP port %d", e.DestinationPort)
		}
		fmt.Fprintf(stdout, "  %-16s %s %s → %s/%s %s (recorded %s; in force now %s; proposed %s", c.Kind, e.Start.Format(time.RFC3339), src, e.DestinationNamespace, e.DestinationWorkload, what, c.Recorded, c.Was, c.Now)
		if c.Policy != "" {
			fmt.Fprintf(stdout, " by %s", c.Policy)
		}
		fmt.Fprintf(stdout, ")")
		if e.RequestID != "" {
			fmt.Fprintf(stdout, " request-id %s", e.RequestID)
		}
		fmt.Fprintln(stdout)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	return nil
}

// fetchRecords reads the window's records from the control plane's
// dashboard API.
func fetchRecords(ctx context.Context, admin string, since time.Duration) ([]telemetry.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/api/dashboard/records?since="+url.QueryEscape(since.String()), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("records from the control plane: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("records from the control plane: %s %s", resp.Status, b)
	}
	var body struct {
		Records []dashboard.Record `json:"records"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("records from the control plane: %w", err)
	}
	out := make([]telemetry.Entry, len(body.Records))
	for i := range body.Records {
		out[i] = body.Records[i].Entry
	}
	return out, nil
}
