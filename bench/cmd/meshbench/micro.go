package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// microPackages are the packages whose Go benchmarks the report collects.
var microPackages = []string{
	"./internal/authz", "./internal/jwt", "./internal/xfcc", "./internal/telemetry",
	"./internal/ca", "./internal/svid", "./internal/extauthz", "./bench",
	// BenchmarkCustomOPA: the latency a CUSTOM check against the real OPA
	// Envoy plugin adds to a mesh request (make bench builds the peers).
	"./test/e2e/policy",
	// BenchmarkSidecarPair and BenchmarkSidecarPairCaptured: the same
	// sidecar pair, explicit and captured by iptables (as root), side by
	// side.
	"./internal/proxy",
}

// microResult is one line of `go test -bench -benchmem` output.
type microResult struct {
	Pkg, Name               string
	NsOp, BytesOp, AllocsOp float64
	Extra                   string // custom metrics, as printed
}

func runMicro(ctx context.Context, e *env) ([]microResult, string, error) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1"}
	if e.quick {
		args = append(args, "-benchtime", "100x")
	} else {
		args = append(args, "-benchtime", "500ms")
	}
	args = append(args, microPackages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = e.root
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return parseBench(out.String()), out.String(), err
}

func parseBench(s string) []microResult {
	var res []microResult
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "palisade.dev/palisade/")
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		r := microResult{Pkg: pkg, Name: strings.TrimSuffix(f[0], "-"+strconv.Itoa(runtime.GOMAXPROCS(0)))}
		var extra []string
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				r.NsOp = v
			case "B/op":
				r.BytesOp = v
			case "allocs/op":
				r.AllocsOp = v
			default:
				extra = append(extra, f[i]+" "+f[i+1])
			}
		}
		r.Extra = strings.Join(extra, ", ")
		res = append(res, r)
	}
	return res
}

// find returns the first result whose name starts with prefix.
func findMicro(rs []microResult, pkg, prefix string) *microResult {
	for i := range rs {
		if rs[i].Pkg == pkg && strings.HasPrefix(rs[i].Name, prefix) {
			return &rs[i]
		}
	}
	return nil
}

type machine struct {
	CPUs                  int
	Model, Go, Kernel, OS string
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

func haproxyVersion(bin string) string {
	out, err := exec.Command(bin, "-v").Output()
	if err != nil {
		return "version unknown"
	}
	l, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(l)
	if len(f) >= 3 {
		return "HAProxy " + f[2]
	}
	return l
}
