package inject

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"palisade.dev/palisade/internal/proxy"
)

// TestRewrittenProbesReachTheApp follows a probe the way the kubelet and
// the sidecar would: the injector rewrites the pod's probes and writes
// ISTIO_KUBE_APP_PROBERS; the sidecar's forwarder, built from that env,
// answers the rewritten path with what the app answers on the original.
func TestRewrittenProbesReachTheApp(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			io.WriteString(w, "alive") //nolint:errcheck
		case "/ready":
			http.Error(w, "warming up", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer app.Close()
	u, _ := url.Parse(app.URL)
	port, _ := strconv.Atoi(u.Port())

	pod := webPod()
	c := &pod.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}
	c.LivenessProbe.HTTPGet.HTTPHeaders = nil
	c.ReadinessProbe.HTTPGet.Scheme, c.ReadinessProbe.HTTPGet.Port = corev1.URISchemeHTTP, intstr.FromInt32(int32(port))
	c.StartupProbe.TCPSocket.Port = intstr.FromInt32(int32(port))
	cfg := testConfig()
	out, err := cfg.Inject(pod, "shop")
	if err != nil {
		t.Fatal(err)
	}
	env, _ := envOf(container(out, ProxyContainer, false), proxy.AppProbersEnv)
	probes, err := proxy.ParseAppProbers(env)
	if err != nil {
		t.Fatalf("the sidecar refuses the injector's %s: %v\n%s", proxy.AppProbersEnv, err, env)
	}
	status := httptest.NewServer(proxy.NewProbeForwarder(probes, "127.0.0.1", slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer status.Close()

	app0 := container(out, "web", false)
	for _, tc := range []struct {
		probe *corev1.Probe
		want  int
	}{{app0.LivenessProbe, 200}, {app0.ReadinessProbe, 503}, {app0.StartupProbe, 200}} {
		// The kubelet would GET the rewritten path on :15020.
		resp, err := http.Get(status.URL + tc.probe.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.probe.HTTPGet.Path, resp.StatusCode, tc.want)
		}
	}
}

// TestRewrittenGRPCProbes: a gRPC probe, as Istio rewrites it, reaches
// the app's grpc.health.v1 service through the sidecar, for the server as
// a whole and for a named service, and follows the app's status.
func TestRewrittenGRPCProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_NOT_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln) //nolint:errcheck
	defer srv.Stop()
	port := int32(ln.Addr().(*net.TCPAddr).Port)

	pod := webPod()
	c := &pod.Spec.Containers[0]
	cart := "shop.Cart"
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: port}}}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: port, Service: &cart}}, TimeoutSeconds: 2}
	c.StartupProbe = nil
	cfg := testConfig()
	out, err := cfg.Inject(pod, "shop")
	if err != nil {
		t.Fatal(err)
	}
	app0 := container(out, "web", false)
	for _, p := range []*corev1.Probe{app0.LivenessProbe, app0.ReadinessProbe} {
		if p.GRPC != nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != StatusPort {
			t.Fatalf("gRPC probe not rewritten to the status port: %+v", p.ProbeHandler)
		}
	}
	env, _ := envOf(container(out, ProxyContainer, false), proxy.AppProbersEnv)
	probes, err := proxy.ParseAppProbers(env)
	if err != nil {
		t.Fatalf("the sidecar refuses the injector's %s: %v\n%s", proxy.AppProbersEnv, err, env)
	}
	status := httptest.NewServer(proxy.NewProbeForwarder(probes, "127.0.0.1", slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer status.Close()
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(status.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	live, ready := app0.LivenessProbe.HTTPGet.Path, app0.ReadinessProbe.HTTPGet.Path
	if got := get(live); got != 200 {
		t.Errorf("liveness (server SERVING): %d, want 200", got)
	}
	if got := get(ready); got != 503 {
		t.Errorf("readiness (shop.Cart NOT_SERVING): %d, want 503", got)
	}
	hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
	if got := get(ready); got != 200 {
		t.Errorf("readiness (shop.Cart now SERVING): %d, want 200", got)
	}
	srv.Stop()
	if got := get(live); got != 503 {
		t.Errorf("liveness with the app gone: %d, want 503", got)
	}
}
