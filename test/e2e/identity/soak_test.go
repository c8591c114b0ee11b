package identity_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// soakSettings are the soak's length, rate and report file, from
// PALISADE_SOAK (a duration, default 2m), PALISADE_SOAK_RPS (default 100)
// and PALISADE_SOAK_REPORT (a Markdown file to write, default none).
// make soak runs 30m at 1,000 rps and writes docs/soak.md.
func soakSettings(t *testing.T) (time.Duration, int, string) {
	t.Helper()
	d, rps := 2*time.Minute, 100
	if v := os.Getenv("PALISADE_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("PALISADE_SOAK=%q: %v", v, err)
		}
	}
	if v := os.Getenv("PALISADE_SOAK_RPS"); v != "" {
		var err error
		if rps, err = strconv.Atoi(v); err != nil || rps < 1 {
			t.Fatalf("PALISADE_SOAK_RPS=%q: want a positive number", v)
		}
	}
	return d, rps, os.Getenv("PALISADE_SOAK_REPORT")
}

// proxyPIDs finds the mesh's proxy processes, by workload.
func proxyPIDs(t *testing.T, m *meshtest.Mesh) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, pid := range meshtest.Descendants(m.PID()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "palisade-proxy" {
			continue
		}
		for i, a := range args {
			if a == "--workload" && i+1 < len(args) {
				out[args[i+1]] = pid
			}
		}
	}
	return out
}

func rssKiB(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.Atoi(f[1])
			return n, err == nil
		}
	}
	return 0, false
}

// TestSoak runs the workshop mesh under load with one-minute
// certificates and a root rotation half-way: no request may fail, and
// every proxy's RSS, sampled every 10s, must stay flat (the last
// quarter's mean within 50% and 16 MiB of the second quarter's).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a soak of two minutes or more; runs without -short")
	}
	d, rps, report := soakSettings(t)
	m := upWorkshop(t, "--cert-ttl", "1m", "--root-rotation-grace", "15s")
	pids := proxyPIDs(t, m)
	if len(pids) < 4 {
		t.Fatalf("found %d proxy processes (%v), want the three workloads' and the gateway's", len(pids), pids)
	}
	pu, _ := url.Parse("http://" + m.Proxy("workshop", "frontend").HTTPProxy)
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 64}}
	loaders := max(1, rps/50)
	every := time.Duration(loaders) * time.Second / time.Duration(rps)
	var loads []*meshtest.Load
	for range loaders {
		loads = append(loads, meshtest.StartLoad(t, c, every, func() (*http.Request, error) {
			return http.NewRequest(http.MethodGet, "http://productcatalog:5000/products/", nil)
		}, nil))
	}

	var samples []soakSample
	start := time.Now()
	rotated := false
	for time.Since(start) < d {
		s := soakSample{at: time.Since(start), rss: map[string]int{}}
		for w, pid := range pids {
			if kb, ok := rssKiB(pid); ok {
				s.rss[w] = kb
			} else {
				t.Fatalf("proxy %s (pid %d) is gone", w, pid)
			}
		}
		samples = append(samples, s)
		if !rotated && time.Since(start) >= d/2 {
			out, err := m.Palisade("ca", "rotate-root", "--state", filepath.Join(m.State, "ca"))
			if err != nil {
				t.Fatalf("palisade ca rotate-root: %v\n%s", err, out)
			}
			rotated = true
			t.Logf("root rotated at %v", time.Since(start).Round(time.Second))
		}
		time.Sleep(10 * time.Second)
	}
	sent, failed := 0, []string{}
	for _, l := range loads {
		r := l.Stop()
		sent += r.Sent
		failed = append(failed, r.Failures...)
	}
	ran := time.Since(start)
	t.Logf("%v at %d rps asked: %d requests sent (%.0f rps), %d failed", ran.Round(time.Second), rps, sent, float64(sent)/ran.Seconds(), len(failed))
	if len(failed) > 0 {
		t.Errorf("%d requests failed; first: %.500s", len(failed), strings.Join(failed[:min(5, len(failed))], "\n"))
	}

	var names []string
	for w := range pids {
		names = append(names, w)
	}
	sort.Strings(names)
	mean := func(ss []soakSample, w string) int {
		if len(ss) == 0 {
			return 0
		}
		sum := 0
		for _, s := range ss {
			sum += s.rss[w]
		}
		return sum / len(ss)
	}
	q := len(samples) / 4
	var rows []string
	for _, w := range names {
		second, last := mean(samples[q:2*q], w), mean(samples[len(samples)-q:], w)
		peak := 0
		for _, s := range samples {
			peak = max(peak, s.rss[w])
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | %d | %d | %d |", w, samples[0].rss[w]>>10, second>>10, last>>10, peak>>10))
		t.Logf("%s RSS: start %d MiB, second quarter %d MiB, last quarter %d MiB", w, samples[0].rss[w]>>10, second>>10, last>>10)
		if q > 0 && last > second*3/2+16<<10 {
			t.Errorf("%s RSS grew from %d MiB to %d MiB", w, second>>10, last>>10)
		}
	}
	if report != "" {
		writeSoakReport(t, report, fmt.Sprintf("%v at %d rps asked: %d requests (%.0f rps), %d failed; certificates of one minute, a root rotation half-way.",
			ran.Round(time.Second), rps, sent, float64(sent)/ran.Seconds(), len(failed)), names, rows, samples)
	}
}

// soakSample is every proxy's RSS (KiB) at one time into the soak.
type soakSample struct {
	at  time.Duration
	rss map[string]int
}

// writeSoakReport writes the soak's figures as Markdown: a table and,
// per proxy, its RSS over time as a text plot.
func writeSoakReport(t *testing.T, path, summary string, names, rows []string, samples []soakSample) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak\n\nFrom one run of TestSoak (test/e2e/identity) on %s with PALISADE_SOAK=%s PALISADE_SOAK_RPS=%s (`make soak` is 30m at 1000): %s\n\n",
		time.Now().UTC().Format("2006-01-02"), os.Getenv("PALISADE_SOAK"), os.Getenv("PALISADE_SOAK_RPS"), summary)
	b.WriteString("RSS of each proxy process, MiB:\n\n| proxy | start | second quarter | last quarter | peak |\n| --- | --- | --- | --- | --- |\n")
	b.WriteString(strings.Join(rows, "\n") + "\n\nRSS over time (one column a sample, every 10s; each row 1/8 of the proxy's peak):\n\n")
	const levels = " ▁▂▃▄▅▆▇█"
	for _, w := range names {
		peak := 1
		for _, s := range samples {
			peak = max(peak, s.rss[w])
		}
		var line []rune
		for _, s := range samples {
			line = append(line, []rune(levels)[s.rss[w]*8/peak])
		}
		fmt.Fprintf(&b, "    %-40s %s  (peak %d MiB)\n", w, string(line), peak>>10)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
