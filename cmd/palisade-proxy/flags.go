package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/svid"
)

// sidecarFlags are the sidecar's command line, validated strictly: a
// proxy never starts half-configured.
type sidecarFlags struct {
	workload       string
	serviceAccount string
	service        string
	labels         labelFlag
	controlPlane   string
	trustDomain    string
	bundle         string
	inbound        inboundFlag
	outbound       outboundFlag
	httpProxy      string
	admin          string
	status         string
	workloadAPI    string
	tokenFile      string
	certTTL        time.Duration
	keyType        svid.KeyType
	renewFraction  float64
	accessLog      string
	logFormat      string
	pprof          bool
	// captured mode (iptables sends the workload's traffic here)
	capture         bool
	captureOutbound string
	captureInbound  string
	dnsListen       string
	dnsUpstreams    string
	resolvConf      string
	jwtCacheSize    int
	recordBuffer    int
	logLevel        string
	allowRoot       bool
	limits          proxy.Limits
	// gateway mode
	gateway        bool
	gatewayPorts   gatewayFlag
	credentialsDir string
}

func parseFlags(args []string, stderr io.Writer) (*sidecarFlags, error) {
	f := &sidecarFlags{labels: labelFlag{}}
	name := "palisade-proxy"
	if len(args) > 0 && args[0] == "gateway" {
		f.gateway, name, args = true, "palisade-proxy gateway", args[1:]
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.workload, "workload", "", "the workload this sidecar serves, namespace/name (required)")
	fs.StringVar(&f.serviceAccount, "service-account", "default", "the workload's service account")
	fs.StringVar(&f.service, "service", "", "the service the workload backs (default: the workload's name)")
	fs.Var(f.labels, "label", "a workload label key=value (repeatable)")
	fs.StringVar(&f.controlPlane, "control-plane", "", "control plane address host:port (required)")
	fs.StringVar(&f.trustDomain, "trust-domain", config.DefaultTrustDomain, "the mesh's trust domain")
	fs.StringVar(&f.bundle, "bundle", "", "PEM file with the mesh root(s) to trust the control plane by (required)")
	fs.Var(&f.inbound, "inbound", "an inbound port: port=N,name=S,protocol=P,listen=HOST:PORT,app=HOST:PORT (repeatable)")
	fs.Var(&f.outbound, "outbound", "a local port for one upstream: listen=HOST:PORT,target=HOST:PORT (repeatable)")
	fs.StringVar(&f.httpProxy, "http-proxy", "", "outbound HTTP proxy listener for the app's HTTP_PROXY, host:port")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:15000", "admin listener: /ready, /metrics, /config_dump, /certs")
	fs.StringVar(&f.tokenFile, "token-file", "", "Kubernetes service-account token (audience istio-ca) to present to the CA, read again on every request")
	fs.StringVar(&f.status, "status", "", "status listener host:port (Istio's :15020): the app's probes from $"+proxy.AppProbersEnv+" under /app-health/, and /healthz/ready; empty for none")
	fs.StringVar(&f.workloadAPI, "workload-api", "", "unix socket path to serve the SPIFFE Workload API on")
	fs.DurationVar(&f.certTTL, "cert-ttl", 0, "workload certificate lifetime to ask for (default: the CA's, 24h)")
	keyType := fs.String("key-type", string(svid.KeyECP256), fmt.Sprintf("workload key made in the proxy: %s, %s or %s", svid.KeyECP256, svid.KeyRSA2048, svid.KeyRSA4096))
	fs.Float64Var(&f.renewFraction, "renew-fraction", 0.5, "renew the certificate after this fraction of its lifetime")
	fs.StringVar(&f.accessLog, "access-log", "-", "access log file, - for standard output, empty for none")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.IntVar(&f.jwtCacheSize, "jwt-cache-size", jwt.DefaultTokenCacheSize, "verified JWTs remembered so a repeated token is not verified again (Envoy's jwt_cache_size); 0 turns the cache off")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's /debug/pprof/ profiles on the admin listener (off by default)")
	fs.BoolVar(&f.capture, "capture", false, "captured mode, as in an Istio pod: serve the traffic palisade-proxy init redirects (outbound on --capture-outbound, inbound on --capture-inbound) and DNS on --dns; --inbound ports then need no listen= and their app defaults to 127.0.0.1:PORT")
	fs.StringVar(&f.captureOutbound, "capture-outbound", "0.0.0.0:15001", "captured mode: the outbound listener iptables redirects the app's connections to (Istio's 15001)")
	fs.StringVar(&f.captureInbound, "capture-inbound", "0.0.0.0:15006", "captured mode: the inbound listener iptables redirects connections for the workload's ports to (Istio's 15006)")
	fs.StringVar(&f.dnsListen, "dns", "127.0.0.1:15053", "captured mode: the DNS proxy's UDP and TCP address (Istio's 15053); empty for none")
	fs.StringVar(&f.dnsUpstreams, "dns-upstream", "", "captured mode: resolvers (host:port, comma-separated) for names outside the mesh (default: the nameservers of --resolv-conf)")
	fs.StringVar(&f.resolvConf, "resolv-conf", "/etc/resolv.conf", "captured mode: resolv.conf whose nameservers and search domains the DNS proxy follows")
	fs.IntVar(&f.recordBuffer, "record-buffer", 1024, "how many recent requests and connections the admin listener keeps at /records for the control plane's dashboard, under 1 KiB each (0: none)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&f.allowRoot, "allow-root", false, "run even as root (refused by default: run the proxy as its own user)")
	fs.IntVar(&f.limits.MaxRequestHeadersKB, "max-request-headers-kb", 60, "largest request line and headers, in KiB (more is 431; Envoy's max_request_headers_kb)")
	fs.IntVar(&f.limits.MaxRequestHeaders, "max-request-headers", 100, "most request headers (more is 431; Envoy's max_headers_count)")
	fs.DurationVar(&f.limits.RequestHeadersTimeout, "request-headers-timeout", 10*time.Second, "longest wait for a whole request header block once begun (HTTP/1.1: 408 after; HTTP/2: the connection is closed)")
	fs.DurationVar(&f.limits.StreamIdleTimeout, "stream-idle-timeout", 5*time.Minute, "cut a request whose body and answer have not moved this long, the wait for the upstream's answer included, on inbound, outbound and gateway listeners (408 if no answer began; Envoy's stream_idle_timeout)")
	fs.DurationVar(&f.limits.IdleTimeout, "idle-timeout", time.Hour, "close a downstream connection idle this long (Envoy's idle_timeout)")
	maxStreams := fs.Uint("max-concurrent-streams", 1000, "most HTTP/2 streams open on one downstream connection (a stream over it is reset)")
	fs.IntVar(&f.limits.MaxConnections, "max-connections", 0, "most downstream connections open at once on the inbound and gateway listeners, 0 for no limit (over it: reset)")
	if f.gateway {
		fs.Var(&f.gatewayPorts, "port", "gateway: a Gateway server port and where to listen for it, PORT=HOST:PORT (repeatable)")
		fs.StringVar(&f.credentialsDir, "credentials-dir", "", "gateway: directory of TLS credentials by credentialName (NAME/tls.crt, tls.key, ca.crt)")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if *maxStreams == 0 || *maxStreams > 1<<31-1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-streams %d: must be 1-2147483647", *maxStreams))
	}
	f.limits.MaxConcurrentStreams = uint32(*maxStreams)
	if f.limits.MaxRequestHeadersKB < 1 || f.limits.MaxRequestHeadersKB > 8192 {
		errs = append(errs, fmt.Errorf("--max-request-headers-kb %d: must be 1-8192", f.limits.MaxRequestHeadersKB))
	}
	if f.limits.MaxRequestHeaders < 1 {
		errs = append(errs, fmt.Errorf("--max-request-headers %d: must be at least 1", f.limits.MaxRequestHeaders))
	}
	if f.limits.RequestHeadersTimeout <= 0 || f.limits.IdleTimeout <= 0 || f.limits.StreamIdleTimeout <= 0 {
		errs = append(errs, errors.New("--request-headers-timeout, --stream-idle-timeout and --idle-timeout must be positive"))
	}
	if f.limits.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("--max-connections %d: must be 0 (no limit) or more", f.limits.MaxConnections))
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		errs = append(errs, err)
	}
	if f.workload == "" {
		errs = append(errs, errors.New("--workload is required"))
	} else if ns, name, ok := strings.Cut(f.workload, "/"); !ok || !config.IsDNS1123Label(ns) || !config.IsDNS1123Subdomain(name) {
		errs = append(errs, fmt.Errorf("--workload %q: want namespace/name", f.workload))
	}
	if f.controlPlane == "" {
		errs = append(errs, errors.New("--control-plane is required"))
	}
	if f.bundle == "" {
		errs = append(errs, errors.New("--bundle is required"))
	}
	if kt, err := svid.ParseKeyType(*keyType); err != nil {
		errs = append(errs, fmt.Errorf("--key-type %q: want %s, %s or %s", *keyType, svid.KeyECP256, svid.KeyRSA2048, svid.KeyRSA4096))
	} else {
		f.keyType = kt
	}
	if f.renewFraction <= 0 || f.renewFraction >= 1 {
		errs = append(errs, fmt.Errorf("--renew-fraction %v: must be between 0 and 1", f.renewFraction))
	}
	if f.jwtCacheSize < 0 {
		errs = append(errs, fmt.Errorf("--jwt-cache-size %d: must be 0 (off) or more", f.jwtCacheSize))
	}
	if f.logFormat != "json" && f.logFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format %q: json or text", f.logFormat))
	}
	errs = append(errs, f.checkCapture()...)
	if f.recordBuffer < 0 {
		errs = append(errs, fmt.Errorf("--record-buffer %d: must be 0 or more", f.recordBuffer))
	}
	if f.gateway && len(f.gatewayPorts) == 0 {
		errs = append(errs, errors.New("gateway: at least one --port is required"))
	}
	if f.service == "" && f.workload != "" {
		_, f.service, _ = strings.Cut(f.workload, "/")
	}
	return f, errors.Join(errs...)
}

// checkCapture validates the captured-mode flags and fills in the
// inbound ports' defaults: no listener of their own, the app on
// 127.0.0.1 at the port itself, as Istio forwards to an app in a pod.
func (f *sidecarFlags) checkCapture() []error {
	var errs []error
	if !f.capture {
		for _, in := range f.inbound {
			if in.Listen == "" || in.App == "" {
				errs = append(errs, fmt.Errorf("--inbound %d: listen= and app= are required without --capture", in.Port))
			}
		}
		return errs
	}
	if f.gateway {
		return append(errs, errors.New("--capture: not for a gateway"))
	}
	for name, a := range map[string]string{"--capture-outbound": f.captureOutbound, "--capture-inbound": f.captureInbound} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, a, err))
		}
	}
	if f.dnsListen != "" {
		if _, _, err := net.SplitHostPort(f.dnsListen); err != nil {
			errs = append(errs, fmt.Errorf("--dns %q: %w", f.dnsListen, err))
		}
	}
	if f.dnsUpstreams != "" {
		for _, u := range strings.Split(f.dnsUpstreams, ",") {
			if _, _, err := net.SplitHostPort(u); err != nil {
				errs = append(errs, fmt.Errorf("--dns-upstream %q: %w", u, err))
			}
		}
	}
	for i, in := range f.inbound {
		if in.Listen != "" {
			errs = append(errs, fmt.Errorf("--inbound %d: listen= is not used with --capture: connections arrive on --capture-inbound", in.Port))
		}
		if in.App == "" {
			f.inbound[i].App = net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(in.Port), 10))
		}
	}
	return errs
}

type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want key=value", s)
	}
	l[k] = v
	return nil
}

type inboundFlag []proxy.InboundPort

func (f *inboundFlag) String() string { return fmt.Sprint(*f) }
func (f *inboundFlag) Set(s string) error {
	kv, err := keyValues(s, "port", "name", "protocol", "listen", "app")
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(kv["port"], 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("inbound %q: port must be 1-65535", s)
	}
	for _, k := range []string{"listen", "app"} {
		if _, set := kv[k]; !set {
			continue // required unless --capture, checked once every flag is read
		}
		if _, _, err := net.SplitHostPort(kv[k]); err != nil {
			return fmt.Errorf("inbound %q: %s: %w", s, k, err)
		}
	}
	*f = append(*f, proxy.InboundPort{Port: uint32(n), Name: kv["name"], Protocol: proxy.ProtocolOf(kv["protocol"], kv["name"]), Listen: kv["listen"], App: kv["app"]})
	return nil
}

type outboundFlag []proxy.OutboundPort

func (f *outboundFlag) String() string { return fmt.Sprint(*f) }
func (f *outboundFlag) Set(s string) error {
	kv, err := keyValues(s, "listen", "target")
	if err != nil {
		return err
	}
	for _, k := range []string{"listen", "target"} {
		if _, _, err := net.SplitHostPort(kv[k]); err != nil {
			return fmt.Errorf("outbound %q: %s: %w", s, k, err)
		}
	}
	*f = append(*f, proxy.OutboundPort{Listen: kv["listen"], Target: kv["target"]})
	return nil
}

func keyValues(s string, known ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want key=value pairs", s)
		}
		found := false
		for _, n := range known {
			found = found || n == k
		}
		if !found {
			return nil, fmt.Errorf("%q: unknown key %q (known: %s)", s, k, strings.Join(known, ", "))
		}
		out[k] = v
	}
	return out, nil
}

func openAccessLog(path string) (io.Writer, func(), error) {
	switch path {
	case "":
		return nil, func() {}, nil
	case "-":
		return os.Stdout, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

type gatewayFlag []proxy.GatewayListener

func (f *gatewayFlag) String() string { return fmt.Sprint(*f) }
func (f *gatewayFlag) Set(s string) error {
	port, addr, ok := strings.Cut(s, "=")
	n, err := strconv.ParseUint(port, 10, 16)
	if !ok || err != nil || n == 0 {
		return fmt.Errorf("port %q: want PORT=HOST:PORT", s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("port %q: %w", s, err)
	}
	*f = append(*f, proxy.GatewayListener{Port: uint32(n), Listen: addr})
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: debug, info, warn or error", s)
	}
	return l, nil
}
