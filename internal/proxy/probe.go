package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// AppProbersEnv is the environment variable the injector fills with the
// app's original probes, as Istio's sidecar injector does: a JSON object
// from a /app-health/<container>/livez|readyz|startupz path to the probe
// the kubelet would have sent to the app.
const AppProbersEnv = "ISTIO_KUBE_APP_PROBERS"

// AppProbe is one of the app's original probes, in the JSON shape Istio's
// injector writes (a subset of Kubernetes' Probe: the handler and its
// timeout).
type AppProbe struct {
	HTTPGet        *ProbeHTTPGet   `json:"httpGet,omitempty"`
	TCPSocket      *ProbeTCPSocket `json:"tcpSocket,omitempty"`
	GRPC           *ProbeGRPC      `json:"grpc,omitempty"`
	TimeoutSeconds int32           `json:"timeoutSeconds,omitempty"`
}

// handlers counts the probe's handlers; exactly one is valid.
func (p AppProbe) handlers() int {
	n := 0
	for _, set := range []bool{p.HTTPGet != nil, p.TCPSocket != nil, p.GRPC != nil} {
		if set {
			n++
		}
	}
	return n
}

// ProbeHTTPGet is Kubernetes' HTTPGetAction with the port resolved to a
// number by the injector.
type ProbeHTTPGet struct {
	Path        string        `json:"path,omitempty"`
	Port        ProbePort     `json:"port"`
	Host        string        `json:"host,omitempty"`
	Scheme      string        `json:"scheme,omitempty"`
	HTTPHeaders []ProbeHeader `json:"httpHeaders,omitempty"`
}

// ProbeHeader is one header the kubelet would have sent.
type ProbeHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ProbeTCPSocket is Kubernetes' TCPSocketAction.
type ProbeTCPSocket struct {
	Port ProbePort `json:"port"`
	Host string    `json:"host,omitempty"`
}

// ProbeGRPC is Kubernetes' GRPCAction: a call of the gRPC health
// service's Check on the app's port, for the named service ("" is the
// server as a whole).
type ProbeGRPC struct {
	Port    ProbePort `json:"port"`
	Service *string   `json:"service,omitempty"`
}

// ProbePort is a port number; Kubernetes writes it as an IntOrString,
// so a quoted number is accepted too. A name is refused: the injector
// resolves named ports against the container before writing the env.
type ProbePort uint16

// UnmarshalJSON accepts 8080 and "8080".
func (p *ProbePort) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("port %s: want a number 1-65535", b)
	}
	*p = ProbePort(n)
	return nil
}

// ParseAppProbers decodes the ISTIO_KUBE_APP_PROBERS value. Every path
// must be /app-health/<container>/livez, readyz or startupz and every
// probe must have exactly one of httpGet, tcpSocket and grpc; the error names
// the path at fault. An empty value means no probes.
func ParseAppProbers(v string) (map[string]AppProbe, error) {
	out := map[string]AppProbe{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("proxy: %s: %w", AppProbersEnv, err)
	}
	var errs []error
	for path, p := range out {
		if !validProbePath(path) {
			errs = append(errs, fmt.Errorf("proxy: %s: %q: want /app-health/<container>/livez, readyz or startupz", AppProbersEnv, path))
		}
		if p.handlers() != 1 {
			errs = append(errs, fmt.Errorf("proxy: %s: %q: want exactly one of httpGet, tcpSocket and grpc", AppProbersEnv, path))
		}
		if p.HTTPGet != nil && p.HTTPGet.Scheme != "" && !strings.EqualFold(p.HTTPGet.Scheme, "HTTP") && !strings.EqualFold(p.HTTPGet.Scheme, "HTTPS") {
			errs = append(errs, fmt.Errorf("proxy: %s: %q: scheme %q: want HTTP or HTTPS", AppProbersEnv, path, p.HTTPGet.Scheme))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func validProbePath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/app-health/")
	if !ok {
		return false
	}
	container, kind, ok := strings.Cut(rest, "/")
	return ok && container != "" && !strings.Contains(container, "/") && (kind == "livez" || kind == "readyz" || kind == "startupz")
}

// ProbeForwarder serves the app's probes on the sidecar's status port
// (15020): the kubelet asks /app-health/<container>/<kind>, and the
// forwarder sends the original probe to the app on loopback, so probes
// pass whatever PeerAuthentication says about the app's ports. The answer
// is the app's status code (a TCP probe answers 200 when the port accepts
// a connection, 503 when not; a gRPC probe 200 when the app's health
// service answers SERVING, 503 otherwise); an unknown path is 404.
type ProbeForwarder struct {
	probes  map[string]AppProbe
	appHost string
	log     *slog.Logger
	client  *http.Client // plain HTTP
	tls     *http.Client // HTTPS: the app's certificate is not checked, as the kubelet does not
	dialer  net.Dialer
}

// NewProbeForwarder forwards probes to the app at appHost (127.0.0.1 in
// a pod, where app and sidecar share the network namespace); a probe's
// own host, when set, wins as the kubelet's would.
func NewProbeForwarder(probes map[string]AppProbe, appHost string, log *slog.Logger) *ProbeForwarder {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	plain := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	secure := &http.Transport{DisableKeepAlives: true, Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the kubelet does not verify app certificates either
	return &ProbeForwarder{
		probes:  probes,
		appHost: appHost,
		log:     log,
		client:  &http.Client{Transport: plain, CheckRedirect: noRedirect},
		tls:     &http.Client{Transport: secure, CheckRedirect: noRedirect},
	}
}

// Paths lists the probe paths served, sorted.
func (f *ProbeForwarder) Paths() []string {
	out := make([]string, 0, len(f.probes))
	for p := range f.probes {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// ServeHTTP answers one kubelet probe.
func (f *ProbeForwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := f.probes[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second // the kubelet's default
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	switch {
	case p.TCPSocket != nil:
		f.tcp(ctx, w, r.URL.Path, p.TCPSocket)
	case p.GRPC != nil:
		f.grpc(ctx, w, r, p.GRPC)
	default:
		f.http(ctx, w, r, p.HTTPGet)
	}
}

func (f *ProbeForwarder) host(h string) string {
	if h != "" {
		return h
	}
	return f.appHost
}

func (f *ProbeForwarder) tcp(ctx context.Context, w http.ResponseWriter, path string, p *ProbeTCPSocket) {
	addr := net.JoinHostPort(f.host(p.Host), strconv.Itoa(int(p.Port)))
	c, err := f.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		f.log.Info("app probe failed", "path", path, "addr", addr, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	c.Close()
	w.WriteHeader(http.StatusOK)
}

// grpc calls grpc.health.v1.Health/Check on the app in plaintext, as the
// kubelet's gRPC probe does, with the kubelet's User-Agent.
func (f *ProbeForwarder) grpc(ctx context.Context, w http.ResponseWriter, in *http.Request, p *ProbeGRPC) {
	addr := net.JoinHostPort(f.appHost, strconv.Itoa(int(p.Port)))
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return f.dialer.DialContext(ctx, "tcp", a) }),
	}
	if ua := in.Header.Get("User-Agent"); ua != "" {
		opts = append(opts, grpc.WithUserAgent(ua))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		f.log.Info("app probe failed", "path", in.URL.Path, "addr", addr, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	defer conn.Close()
	req := &healthpb.HealthCheckRequest{}
	if p.Service != nil {
		req.Service = *p.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, req)
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		f.log.Info("app probe failed", "path", in.URL.Path, "addr", addr, "status", resp.GetStatus().String(), "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (f *ProbeForwarder) http(ctx context.Context, w http.ResponseWriter, in *http.Request, p *ProbeHTTPGet) {
	client, scheme := f.client, "http"
	if strings.EqualFold(p.Scheme, "HTTPS") {
		client, scheme = f.tls, "https"
	}
	path := p.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(f.host(p.Host), strconv.Itoa(int(p.Port))) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		f.log.Info("app probe failed", "path", in.URL.Path, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	// The kubelet's headers, then the probe's own (which may set Host).
	req.Header.Set("User-Agent", in.Header.Get("User-Agent"))
	req.Header.Set("Accept", "*/*")
	for _, h := range p.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		f.log.Info("app probe failed", "path", in.URL.Path, "url", url, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	defer resp.Body.Close()
	// The kubelet reads at most 10 KiB of a probe's body.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	w.WriteHeader(resp.StatusCode)
	w.Write(body) //nolint:errcheck
}
