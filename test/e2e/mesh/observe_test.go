package mesh_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// accessEntry is one line of a sidecar's JSON access log, the fields the
// tests read.
type accessEntry struct {
	Method               *string `json:"method"`
	Path                 *string `json:"path"`
	Protocol             *string `json:"protocol"`
	ResponseCode         int     `json:"response_code"`
	ResponseFlags        string  `json:"response_flags"`
	Authority            *string `json:"authority"`
	Direction            string  `json:"direction"`
	SourcePrincipal      *string `json:"source_principal"`
	DestinationPrincipal *string `json:"destination_principal"`
	MTLS                 bool    `json:"mtls"`
	BytesReceived        int64   `json:"bytes_received"`
	BytesSent            int64   `json:"bytes_sent"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// accessLog parses every JSON line of a workload's sidecar log; other
// lines (the sidecar's own slog records) are told apart by having no
// "direction" member.
func accessLog(t *testing.T, state, ns, name string) []accessEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(state, "logs", ns+"."+name+".proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []accessEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(`{"start_time":`)) {
			continue
		}
		var e accessEntry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("access log line is not JSON: %v\n%s", err, line)
		}
		out = append(out, e)
	}
	return out
}

// findAccess waits until an access log entry matching f shows up.
func findAccess(t *testing.T, state, ns, name, what string, f func(accessEntry) bool) accessEntry {
	t.Helper()
	var found accessEntry
	meshtest.Eventually(t, 10*time.Second, what, func() error {
		es := accessLog(t, state, ns, name)
		for _, e := range es {
			if f(e) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no matching entry among %d in %s.%s.proxy.log", len(es), ns, name)
	})
	return found
}

// metrics scrapes a sidecar's /metrics and parses the Prometheus text.
func metrics(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, b)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// counterWith sums the counter series of fam whose labels include want.
func counterWith(fams map[string]*dto.MetricFamily, fam string, want map[string]string) (float64, int) {
	var sum float64
	var n int
	for _, m := range fams[fam].GetMetric() {
		ls := labelsOf(m)
		ok := true
		for k, v := range want {
			ok = ok && ls[k] == v
		}
		if ok {
			sum += m.GetCounter().GetValue()
			n++
		}
	}
	return sum, n
}

// curl runs the real curl binary; it returns stdout+stderr and the exit
// code.
func curl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "10"}, args...)...)
	// Only what the arguments say: no proxy from this environment.
	cmd.Env = append(os.Environ(), "NO_PROXY=", "no_proxy=", "HTTP_PROXY=", "http_proxy=", "HTTPS_PROXY=", "https_proxy=", "ALL_PROXY=", "all_proxy=")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)), code
}

func needCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed")
		}
		t.Skip("curl is not installed")
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// series lists a family's series, one label set a line, for failure
// messages.
func series(fams map[string]*dto.MetricFamily, fam string) string {
	var have []string
	for _, m := range fams[fam].GetMetric() {
		have = append(have, fmtLabels(labelsOf(m)))
	}
	return strings.Join(have, "\n")
}

func fmtLabels(ls map[string]string) string {
	var parts []string
	for k, v := range ls {
		parts = append(parts, k+"="+v)
	}
	sortStrings(parts)
	return strings.Join(parts, ",")
}

func sortStrings(s []string) { sort.Strings(s) }
