package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// runCodes is `meshbench codes`: it starts every Palisade scenario with
// the binaries of -bin and, in turn, with those of -race-bin (built with
// -race), sends the same requests on every path the scenario checks
// (fortio, a fixed count over a few connections), and fails unless both
// builds answered every path with the same response codes, in the same
// numbers. A data race that changes behaviour under load shows here; the
// race detector's own reports end the process, which shows too.
func runCodes(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshbench codes", flag.ContinueOnError)
	binDir := fs.String("bin", "bin", "directory holding palisade and palisade-proxy")
	raceDir := fs.String("race-bin", "", "the same binaries built with -race (required)")
	fortio := fs.String("fortio", "", "fortio binary (required)")
	n := fs.Int("n", 300, "requests per path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *fortio == "" || *raceDir == "" {
		return errors.New("-fortio and -race-bin are required")
	}
	work, err := os.MkdirTemp("", "meshbench-codes-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	e := &env{work: work, skipReason: map[string]string{}}
	for dst, src := range map[*string]string{&e.fortio: *fortio, binDir: *binDir, raceDir: *raceDir} {
		if *dst, err = filepath.Abs(src); err != nil {
			return err
		}
	}
	if e.jwt, err = newJWTMinter(); err != nil {
		return err
	}
	be, backend, err := startBackend(e)
	if err != nil {
		return err
	}
	defer backend.stop()

	load := []string{"-n", fmt.Sprint(*n), "-c", "4", "-qps", "0"}
	var diffs []string
	fmt.Printf("| scenario | path | header | codes (-race off) | codes (-race on) |\n| --- | --- | --- | --- | --- |\n")
	for _, sc := range scenarios {
		got := map[string][]string{} // build → codes per check
		for _, build := range []struct{ name, dir string }{{"plain", *binDir}, {"race", *raceDir}} {
			e.binDir, e.work = build.dir, filepath.Join(work, build.name)
			if err := os.MkdirAll(e.work, 0o700); err != nil {
				return err
			}
			m, err := startPalisade(ctx, e, sc, be)
			if err != nil {
				if m != nil {
					m.stop()
				}
				return fmt.Errorf("%s (%s build): %w", sc.Title, build.name, err)
			}
			for i, c := range sc.Checks {
				header := c.Header
				if header == "bearer" {
					header = "Authorization: Bearer " + e.jwt.Token
				}
				r, err := runFortio(ctx, e, fmt.Sprintf("%s-%s-%d", sc.Name, build.name, i), "http://"+m.HTTP+c.Path, header, load, m.pids())
				if err != nil {
					m.stop()
					return fmt.Errorf("%s (%s build) %s: %w", sc.Title, build.name, c.Path, err)
				}
				got[build.name] = append(got[build.name], codesString(r.Codes))
			}
			m.stop()
		}
		for i, c := range sc.Checks {
			plain, race := got["plain"][i], got["race"][i]
			fmt.Printf("| %s | %s | %s | %s | %s |\n", sc.Name, c.Path, orNone(c.Header), plain, race)
			if plain != race || plain != fmt.Sprintf("%d×%d", c.Want, *n) {
				diffs = append(diffs, fmt.Sprintf("%s %s %s: -race off %s, on %s, want %d×%d", sc.Name, c.Path, orNone(c.Header), plain, race, c.Want, *n))
			}
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("response codes differ:\n%s", strings.Join(diffs, "\n"))
	}
	fmt.Println("\nsame response codes with and without -race on every path")
	return nil
}

// codesString renders fortio's RetCodes as "200×300" or "200×290 503×10".
func codesString(codes map[string]int64) string {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, codes[k])
	}
	return strings.Join(parts, " ")
}

func orNone(h string) string {
	if h == "" {
		return "–"
	}
	if k, _, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "authorization") {
		return k + ": …" // the token itself stays out of the output
	}
	return h
}
