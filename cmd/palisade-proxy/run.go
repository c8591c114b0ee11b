package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/structpb"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/dnsproxy"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/svid"
	"palisade.dev/palisade/internal/telemetry"
	"palisade.dev/palisade/internal/xds"
)

// Node metadata keys, as the control plane reads them.
const (
	metaInbound = "INBOUND"
	metaApp     = "APP"
	metaAdmin   = "ADMIN"
	metaHTTP    = "HTTP_PROXY"
	metaGateway = "GATEWAY"
	metaLabels  = "LABELS"
)

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "init" {
		return runInit(ctx, args[1:], os.Stdout, os.Stderr)
	}
	f, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	level, _ := parseLevel(f.logLevel)
	log := newLogger(f.logFormat, level, os.Stderr)
	if os.Geteuid() == 0 && !f.allowRoot {
		// A proxy that runs as root can be made to do anything root can;
		// Istio runs its sidecar as uid 1337.
		return errors.New("refusing to run as root: run palisade-proxy as its own user, or pass --allow-root")
	}
	token := os.Getenv("PALISADE_JOIN_TOKEN")
	os.Unsetenv("PALISADE_JOIN_TOKEN")

	td, err := spiffeid.TrustDomainFromString(f.trustDomain)
	if err != nil {
		return fmt.Errorf("--trust-domain: %w", err)
	}
	pemBytes, err := os.ReadFile(f.bundle)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	roots, err := identity.ParseBundlePEM(td, pemBytes)
	if err != nil {
		return fmt.Errorf("--bundle %s: %w", f.bundle, err)
	}
	ns, name, _ := strings.Cut(f.workload, "/")
	id, err := identity.ForServiceAccount(td, ns, f.serviceAccount)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	agent, err := svid.NewAgent(svid.Config{
		CAAddress: f.controlPlane, CARoots: roots, JoinToken: token, TokenFile: f.tokenFile, ID: id, TTL: f.certTTL, KeyType: f.keyType,
		RenewFraction: f.renewFraction, Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer agent.Close()
	go agent.Run(ctx) //nolint:errcheck // ends with ctx
	select {
	case <-agent.Ready():
	case <-ctx.Done():
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("no workload certificate after 30s: is the control plane up and the join token valid?")
	}
	log.Info("workload certificate obtained", "spiffeId", id.String())

	self := proxy.Self{
		Ref:            config.WorkloadRef{Namespace: ns, Name: name, Labels: f.labels, Services: []string{f.service}},
		ServiceAccount: f.serviceAccount,
	}
	if f.gateway {
		self.Ref.Gateway = name
	}
	cacheSize := f.jwtCacheSize
	if cacheSize == 0 {
		cacheSize = -1 // off
	}
	keys := jwt.NewKeyStore(jwt.KeyStoreOptions{Logger: log, TokenCacheSize: cacheSize})
	go keys.Run(ctx)
	cc := &proxy.Compiler{Self: self, Keys: keys}
	store := proxy.NewStore(log, cc.Compile)
	store.OnChange(func(c *proxy.Compiled) {
		if c.Bundle != nil {
			agent.SetBundle(c.Bundle)
		}
	})

	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		return err
	}
	w, closeLog, err := openAccessLog(f.accessLog)
	if err != nil {
		return fmt.Errorf("--access-log: %w", err)
	}
	defer closeLog()
	limits, err := telemetry.NewLimits(reg)
	if err != nil {
		return err
	}
	tel := &proxy.Telemetry{Metrics: metrics, Limits: limits}
	if f.recordBuffer > 0 {
		tel.Records = telemetry.NewRing(f.recordBuffer)
	}
	if w != nil {
		tel.AccessLog = telemetry.NewAccessLog(w)
	}
	opts := proxy.Options{Self: self, Inbound: f.inbound, HTTP: f.httpProxy, Outbound: f.outbound,
		Gateway: f.gatewayPorts, CredentialsDir: f.credentialsDir, Limits: f.limits}
	if f.capture {
		opts.CaptureOutbound, opts.CaptureInbound = f.captureOutbound, f.captureInbound
	}
	p := proxy.New(opts, store, agent, tel, log)
	if err := p.Listen(); err != nil {
		return err
	}
	if f.capture && f.dnsListen != "" {
		dns, err := startDNS(f, store, log)
		if err != nil {
			p.Close()
			return err
		}
		defer dns.Close()
	}

	// Keepalive pings find a connection the network dropped silently (a
	// link cut while the stream was idle), so the client reconnects and
	// resyncs instead of waiting on it forever; the control plane allows
	// one every 10s.
	conn, err := grpc.NewClient(f.controlPlane, grpc.WithTransportCredentials(credentials.NewTLS(
		xds.ClientTLS(td, agent.Bundle, agent.GetClientCertificate))),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	defer conn.Close()
	meta, err := nodeMetadata(p.Options(), f.admin, f.gateway, f.labels)
	if err != nil {
		return err
	}
	xc := &xds.Client{Conn: conn, Node: &corev3.Node{Id: f.workload, Metadata: meta}, Handler: store, Log: log}
	go xc.Run(ctx) //nolint:errcheck // ends with ctx

	if f.workloadAPI != "" {
		api := svid.NewWorkloadAPI(agent, log)
		go func() {
			if err := api.Serve(ctx, f.workloadAPI); err != nil {
				log.Error("SPIFFE Workload API stopped", "socket", f.workloadAPI, "err", err)
			}
		}()
	}
	admin, err := proxy.StartAdmin(f.admin, proxy.AdminSources{Store: store, Certs: agent, Keys: keys, Registry: reg, Pprof: f.pprof, Records: tel.Records}, log)
	if err != nil {
		return err
	}
	defer admin.Close()
	if f.status != "" {
		probes, err := proxy.ParseAppProbers(os.Getenv(proxy.AppProbersEnv))
		if err != nil {
			return err
		}
		st, err := proxy.StartStatus(f.status, proxy.NewProbeForwarder(probes, "127.0.0.1", log), proxy.AdminSources{Store: store, Certs: agent}, log)
		if err != nil {
			return err
		}
		defer st.Close()
	}
	log.Info("sidecar started", "workload", f.workload, "admin", admin.Addr())
	return p.Serve(ctx)
}

func nodeMetadata(o proxy.Options, admin string, gateway bool, labels map[string]string) (*structpb.Struct, error) {
	in, app := map[string]any{}, map[string]any{}
	if gateway {
		ls := map[string]any{}
		for k, v := range labels {
			ls[k] = v
		}
		return structpb.NewStruct(map[string]any{metaGateway: true, metaLabels: ls, metaAdmin: admin})
	}
	for _, p := range o.Inbound {
		k := strconv.FormatUint(uint64(p.Port), 10)
		in[k], app[k] = p.Listen, p.App
		if p.Listen == "" {
			in[k] = o.CaptureInbound // captured: every port arrives there
		}
	}
	return structpb.NewStruct(map[string]any{metaInbound: in, metaApp: app, metaAdmin: admin, metaHTTP: o.HTTP})
}

// startDNS starts the DNS proxy on the mesh names of the config in
// store, forwarding the rest to --dns-upstream or resolv.conf's
// nameservers, with resolv.conf's search domains.
func startDNS(f *sidecarFlags, store *proxy.Store, log *slog.Logger) (*dnsproxy.Server, error) {
	servers, search, err := dnsproxy.ReadResolvConf(f.resolvConf)
	if err != nil && f.dnsUpstreams == "" {
		return nil, fmt.Errorf("--resolv-conf: %w (or give --dns-upstream)", err)
	}
	if f.dnsUpstreams != "" {
		servers = strings.Split(f.dnsUpstreams, ",")
	}
	s, err := dnsproxy.Start(dnsproxy.Config{Listen: f.dnsListen, Upstreams: servers, Search: search, Log: log,
		Names: func() dnsproxy.Names {
			if c := store.Current(); c != nil {
				return c
			}
			return nil
		}})
	if err != nil {
		return nil, err
	}
	log.Info("DNS proxy started", "listen", s.Addr(), "upstreams", servers, "search", search)
	return s, nil
}

func newLogger(format string, level slog.Level, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
