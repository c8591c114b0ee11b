package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"palisade.dev/palisade/internal/analyze"
	"palisade.dev/palisade/internal/config"
)

// runAnalyze implements `palisade analyze [-o text|json] [--strict] PATH...`:
// validation errors of every file, then the cross-resource checks. Exit
// status: 0 clean (or only warnings and infos), 1 warnings with --strict,
// 2 errors; usage errors also exit 2.
func runAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "text", "output format: text or json")
	strictFlag := fs.Bool("strict", false, "exit 1 when there are warnings")
	kf := addKubeFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: palisade analyze [-o text|json] [--strict] PATH... | --kubeconfig PATH")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError{code: 2, err: fmt.Errorf("analyze: %w", err)}
	}
	if *out != "text" && *out != "json" {
		return exitError{code: 2, err: fmt.Errorf("analyze: -o must be text or json, not %q", *out)}
	}
	switch {
	case kf.enabled() && fs.NArg() > 0:
		return exitError{code: 2, err: errors.New("analyze: PATH and --kubeconfig/--kubernetes are exclusive")}
	case !kf.enabled() && fs.NArg() == 0:
		fs.Usage()
		return exitError{code: 2, err: errors.New("analyze: no PATH given")}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var snap *config.Snapshot
	var loadErr error
	if kf.enabled() {
		snap, loadErr = loadCluster(ctx, kf)
	} else {
		snap, loadErr = config.LoadAll(fs.Args()...)
	}
	if snap == nil {
		return exitError{code: 2, err: fmt.Errorf("analyze: %w", loadErr)}
	}
	findings := analyze.FromError(loadErr)
	findings = append(findings, analyze.Run(snap)...)
	errs, warnings, infos := analyze.Count(findings)

	switch *out {
	case "json":
		if findings == nil {
			findings = []analyze.Finding{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(findings); err != nil {
			return fmt.Errorf("analyze: write: %w", err)
		}
	default:
		for _, f := range findings {
			fmt.Fprintln(stdout, f.String())
		}
		if len(findings) == 0 {
			fmt.Fprintf(stdout, "No problems found in %d resources.\n", len(snap.Resources))
		} else {
			fmt.Fprintf(stdout, "%d errors, %d warnings, %d infos.\n", errs, warnings, infos)
		}
	}
	switch {
	case errs > 0:
		return exitError{code: 2, err: fmt.Errorf("analyze: %d errors", errs)}
	case warnings > 0 && *strictFlag:
		return exitError{code: 1, err: fmt.Errorf("analyze: %d warnings (--strict)", warnings)}
	}
	return nil
}
