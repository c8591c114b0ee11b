package proxy

import (
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/identity"
)

// probeApp is the app behind the sidecar: a healthy path, a failing one,
// a slow one, and one that checks the probe's own headers.
func probeApp(t *testing.T, tlsToo bool) (plain, secure *url.URL) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }) //nolint:errcheck
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "db down", http.StatusInternalServerError) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" || r.Host != "app.example" {
			http.Error(w, fmt.Sprintf("got X-Probe %q Host %q", r.Header.Get("X-Probe"), r.Host), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "headers ok") //nolint:errcheck
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	plain, _ = url.Parse(s.URL)
	if tlsToo {
		ts := httptest.NewTLSServer(mux)
		t.Cleanup(ts.Close)
		secure, _ = url.Parse(ts.URL)
	}
	return plain, secure
}

func TestProbeForwarder(t *testing.T) {
	plain, secure := probeApp(t, true)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	env := fmt.Sprintf(`{
	  "/app-health/web/livez": {"httpGet": {"path": "/healthz", "port": %[1]s, "scheme": "HTTP"}, "timeoutSeconds": 1},
	  "/app-health/web/readyz": {"httpGet": {"path": "/broken", "port": "%[1]s"}},
	  "/app-health/web/startupz": {"httpGet": {"path": "healthz", "port": %[2]s, "scheme": "HTTPS"}},
	  "/app-health/hdr/livez": {"httpGet": {"path": "/headers", "port": %[1]s, "httpHeaders": [{"name": "X-Probe", "value": "yes"}, {"name": "Host", "value": "app.example"}]}},
	  "/app-health/redirect/livez": {"httpGet": {"path": "/moved", "port": %[1]s}},
	  "/app-health/db/livez": {"tcpSocket": {"port": %[1]s}},
	  "/app-health/db/readyz": {"tcpSocket": {"port": %[3]d}}
	}`, plain.Port(), secure.Port(), closedPort)
	probes, err := ParseAppProbers(env)
	if err != nil {
		t.Fatal(err)
	}
	fwd := NewProbeForwarder(probes, "127.0.0.1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	status := httptest.NewServer(fwd)
	defer status.Close()

	tests := []struct {
		name, path string
		want       int
		body       string
	}{
		{name: "healthy app", path: "/app-health/web/livez", want: 200, body: "ok"},
		{name: "failing app keeps its status", path: "/app-health/web/readyz", want: 500, body: "db down"},
		{name: "https without verifying the app", path: "/app-health/web/startupz", want: 200, body: "ok"},
		{name: "probe headers and host", path: "/app-health/hdr/livez", want: 200, body: "headers ok"},
		{name: "redirect not followed", path: "/app-health/redirect/livez", want: 302},
		{name: "tcp open", path: "/app-health/db/livez", want: 200},
		{name: "tcp refused", path: "/app-health/db/readyz", want: 503},
		{name: "unknown container", path: "/app-health/other/livez", want: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(status.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.want, b)
			}
			if tc.body != "" && !strings.Contains(string(b), tc.body) {
				t.Fatalf("body %q, want %q", b, tc.body)
			}
		})
	}
}

func TestProbeForwarderAppDown(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })) //nolint:errcheck
	u, _ := url.Parse(app.URL)
	probes, err := ParseAppProbers(fmt.Sprintf(`{"/app-health/web/livez": {"httpGet": {"path": "/healthz", "port": %s}}}`, u.Port()))
	if err != nil {
		t.Fatal(err)
	}
	status := httptest.NewServer(NewProbeForwarder(probes, "127.0.0.1", slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer status.Close()
	get := func() int {
		resp, err := http.Get(status.URL + "/app-health/web/livez")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(); got != http.StatusOK {
		t.Fatalf("app up: status %d, want 200", got)
	}
	// Stop the app: each probe is sent afresh, so the failure shows at once.
	app.Close()
	if got := get(); got != http.StatusServiceUnavailable {
		t.Fatalf("app down: status %d, want 503", got)
	}
}

func TestParseAppProbers(t *testing.T) {
	tests := []struct {
		name, env, err string
	}{
		{name: "empty", env: ""},
		{name: "bad path", env: `{"/healthz": {"httpGet": {"port": 80}}}`, err: `"/healthz": want /app-health/`},
		{name: "bad kind", env: `{"/app-health/a/alive": {"httpGet": {"port": 80}}}`, err: "want /app-health/"},
		{name: "no handler", env: `{"/app-health/a/livez": {"timeoutSeconds": 3}}`, err: "exactly one of httpGet, tcpSocket and grpc"},
		{name: "two handlers", env: `{"/app-health/a/livez": {"httpGet": {"port": 80}, "tcpSocket": {"port": 80}}}`, err: "exactly one"},
		{name: "grpc and tcp", env: `{"/app-health/a/livez": {"grpc": {"port": 80}, "tcpSocket": {"port": 80}}}`, err: "exactly one"},
		{name: "grpc", env: `{"/app-health/a/livez": {"grpc": {"port": 7070, "service": "shop.Cart"}, "timeoutSeconds": 1}}`},
		{name: "named port", env: `{"/app-health/a/livez": {"httpGet": {"port": "http"}}}`, err: "want a number"},
		{name: "unknown field", env: `{"/app-health/a/livez": {"exec": {}}}`, err: "unknown field"},
		{name: "bad scheme", env: `{"/app-health/a/livez": {"httpGet": {"port": 80, "scheme": "FTP"}}}`, err: `scheme "FTP"`},
		{name: "not json", env: `{`, err: AppProbersEnv},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAppProbers(tc.env)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// noChain is a sidecar without its certificate yet.
type noChain struct{}

func (noChain) Chain() []*x509.Certificate { return nil }
func (noChain) RenewAt() time.Time         { return time.Time{} }
func (noChain) Bundle() *identity.Bundle   { return nil }

// TestStatusListener: the status listener on a real port forwards the
// app's probes at once, while its own /healthz/ready waits for config and
// certificate.
func TestStatusListener(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })) //nolint:errcheck
	defer app.Close()
	u, _ := url.Parse(app.URL)
	probes, err := ParseAppProbers(fmt.Sprintf(`{"/app-health/web/livez": {"httpGet": {"path": "/", "port": %s}}}`, u.Port()))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := NewStore(log, func(Resources) (*Compiled, error) { return &Compiled{}, nil })
	st, err := StartStatus("127.0.0.1:0", NewProbeForwarder(probes, "127.0.0.1", log), AdminSources{Store: store, Certs: noChain{}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for path, want := range map[string]int{"/app-health/web/livez": 200, "/healthz/ready": 503, "/app-health/web/readyz": 404} {
		resp, err := http.Get("http://" + st.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
	}
}
