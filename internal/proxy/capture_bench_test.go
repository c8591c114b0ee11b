//go:build linux

package proxy_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
)

const netnsPrefix = "pal-capture-"

// captureNetns makes a network namespace for this process, removed when
// tb ends: loopback up, a veth pair with both ends inside (outsideAddr,
// catalogAddr, outsideAddr6 on mesh0, the VIP range routed there), and
// the nat rules given for iptables and ip6tables.
func captureNetns(tb testing.TB, rules4, rules6 [][]string) string {
	tb.Helper()
	removeStaleNamespaces(tb)
	ns := fmt.Sprintf("%s%d", netnsPrefix, os.Getpid())
	run(tb, "ip", "netns", "add", ns)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v %s", ns, err, out)
		}
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "mesh0", "type", "veth", "peer", "name", "mesh1"},
		{"addr", "add", outsideAddr + "/24", "dev", "mesh0"},
		{"addr", "add", catalogAddr + "/32", "dev", "mesh0"},
		{"link", "set", "mesh0", "up"},
		{"link", "set", "mesh1", "up"},
		{"addr", "add", outsideAddr6 + "/64", "dev", "mesh0", "nodad"},
		{"route", "add", "240.240.0.0/16", "dev", "mesh0"},
	} {
		run(tb, "ip", append([]string{"-n", ns}, args...)...)
	}
	for _, r := range rules4 {
		run(tb, "ip", append([]string{"netns", "exec", ns, "iptables"}, r...)...)
	}
	for _, r := range rules6 {
		run(tb, "ip", append([]string{"netns", "exec", ns, "ip6tables"}, r...)...)
	}
	return ns
}

// removeStaleNamespaces deletes the namespaces of earlier runs of this
// test whose process is gone (killed before its cleanup ran).
func removeStaleNamespaces(t testing.TB) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pid, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok || pid == "" {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // its test still runs
		}
		run(t, "ip", "netns", "del", name)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// benchRules capture by destination only, since the client, both
// sidecars and the app share this process: the client dials service
// VIPs (redirected to the outbound capture), the client's sidecar dials
// the workload's address (redirected to its inbound capture), and
// nothing else is captured.
var benchRules = [][]string{
	{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "240.240.0.0/16", "-j", "REDIRECT", "--to-ports", "15001"},
	{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", catalogAddr, "-j", "REDIRECT", "--to-ports", "15006"},
}

var capturedBench struct {
	once sync.Once
	line string // the namespace's benchmark result line
	err  error
}

// BenchmarkSidecarPairCaptured is BenchmarkSidecarPair with the traffic
// captured by iptables instead of sent to an explicit outbound port:
// the client calls the service's VIP, SO_ORIGINAL_DST picks the
// service, and the server's sidecar takes the connection on its inbound
// capture. It runs in a network namespace of its own (root), with the
// same -test.benchtime; run both together to compare:
// go test -run '^$' -bench SidecarPair ./internal/proxy/
func BenchmarkSidecarPairCaptured(b *testing.B) {
	if os.Getenv(netnsChildEnv) != "" {
		capturedPair(b)
		return
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root: a network namespace and nat rules")
	}
	capturedBench.once.Do(func() {
		ns := captureNetns(b, benchRules, nil)
		args := []string{"netns", "exec", ns, os.Args[0], "-test.run", "^$", "-test.bench", "^BenchmarkSidecarPairCaptured$", "-test.benchmem"}
		for _, f := range []string{"test.benchtime", "test.cpu"} {
			if fl := flag.Lookup(f); fl != nil && fl.Value.String() != "" {
				args = append(args, "-"+f, fl.Value.String())
			}
		}
		cmd := exec.Command("ip", args...)
		cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			capturedBench.err = fmt.Errorf("in the namespace: %v\n%s", err, out)
			return
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "BenchmarkSidecarPairCaptured") {
				capturedBench.line = sc.Text()
			}
		}
		if capturedBench.line == "" {
			capturedBench.err = fmt.Errorf("no result in the namespace's output:\n%s", out)
		}
	})
	if capturedBench.err != nil {
		b.Fatal(capturedBench.err)
	}
	// The namespace's figures are this benchmark's: report them, per
	// operation, whatever b.N the framework asks for here.
	f := strings.Fields(capturedBench.line)
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			b.Fatalf("result %q: %v", capturedBench.line, err)
		}
		b.ReportMetric(v, f[i+1])
	}
}

// capturedPair is the benchmark inside the namespace.
func capturedPair(b *testing.B) {
	m := newTestMesh(b)
	m.write("workloads.yaml", captureWorkloads)
	m.write("pa.yaml", strictMesh)
	m.reload()
	metrics := func() *proxy.Telemetry {
		mt, err := telemetry.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		return &proxy.Telemetry{Metrics: mt}
	}
	m.sidecarWith("productcatalog", "productcatalog-sa", m.ca.issue(b, catalogID), m.ca.issue(b, catalogID), proxy.Options{
		Inbound:        []proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, App: app(b)}},
		CaptureInbound: "0.0.0.0:15006",
	}, metrics())
	cert := m.ca.issue(b, frontendID)
	m.sidecarWith("frontend", "frontend-sa", cert, cert, proxy.Options{CaptureOutbound: "0.0.0.0:15001"}, metrics())
	var u string
	eventually(b, "frontend learns productcatalog's VIP", func() error {
		ips, ok := m.stores["frontend"].Current().LookupHost("productcatalog.workshop.svc.cluster.local")
		if !ok || len(ips) == 0 {
			return fmt.Errorf("no VIP yet")
		}
		u = "http://" + ips[0].String() + ":5000/products/?q=1"
		return nil
	})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	get := func() error {
		resp, err := c.Get(u)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	eventually(b, "frontend reaches productcatalog through the capture", get)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
