package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
	"palisade.dev/palisade/internal/xds"
)

const workloadsYAML = `
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: frontend, namespace: workshop, labels: {app: frontend}}
spec:
  serviceAccount: frontend-sa
  command: x
  ports: [{name: http, number: 9000, protocol: HTTP}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: productcatalog, namespace: workshop, labels: {app: productcatalog}}
spec:
  serviceAccount: productcatalog-sa
  command: x
  ports: [{name: http, number: 5000, protocol: HTTP}, {name: tcp-raw, number: 7000, protocol: TCP}]
`

// testMesh is a control plane and sidecars on loopback.
type testMesh struct {
	t      testing.TB
	ca     *testCA
	dir    string
	cp     *controlplane.Server
	cpLn   net.Listener
	log    *slog.Logger
	ctx    context.Context
	roots  *x509.CertPool
	logs   map[string]*syncLog     // access log of each sidecar, by workload name
	stores map[string]*proxy.Store // config of each sidecar, by workload name
}

// syncLog is an access log sink safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// take returns what was written since the last take, and forgets it.
func (l *syncLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

func newTestMesh(t testing.TB) *testMesh {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := &testMesh{t: t, ca: newTestCA(t), dir: t.TempDir(), ctx: ctx, log: slog.New(slog.NewTextHandler(io.Discard, nil)), logs: map[string]*syncLog{}, stores: map[string]*proxy.Store{}}
	if testing.Verbose() {
		m.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m.roots = x509.NewCertPool()
	m.roots.AddCert(m.ca.cert)
	m.write("workloads.yaml", workloadsYAML)
	m.cp = controlplane.NewServer(m.log, controlplane.ConfigRegistry{}, func(chain []*x509.Certificate) (spiffeid.ID, error) {
		b, err := identity.NewBundle(spiffeid.RequireTrustDomainFromString("cluster.local"), m.ca.cert)
		if err != nil {
			return spiffeid.ID{}, err
		}
		return identity.VerifyChain(b, chain, time.Now())
	})
	m.cp.SetBundle(m.ca.pem)
	m.reload()
	serverCert := m.ca.issue(t, "spiffe://cluster.local/ns/istio-system/sa/palisade-control-plane")
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{*serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: m.roots,
	})
	gs := grpc.NewServer(grpc.Creds(creds))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, m.cp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.cpLn = ln
	go gs.Serve(ln) //nolint:errcheck
	t.Cleanup(gs.Stop)
	return m
}

func (m *testMesh) write(name, body string) {
	m.t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, name), []byte(body), 0o600); err != nil {
		m.t.Fatal(err)
	}
}

func (m *testMesh) reload() {
	m.t.Helper()
	snap, err := config.Load(m.dir)
	if err != nil {
		m.t.Fatal(err)
	}
	m.cp.SetSnapshot(snap)
}

// sidecar starts a proxy for workload ns/name with the given
// certificate, connected to the control plane, and waits for config.
func (m *testMesh) sidecar(name, sa string, cert *tls.Certificate, inbound []proxy.InboundPort, httpProxy bool) *proxy.Proxy {
	return m.sidecarServing(name, sa, cert, cert, inbound, httpProxy)
}

// sidecarServing is sidecar with a separate certificate for the data
// plane, to play a workload that serves with an identity not its own.
func (m *testMesh) sidecarServing(name, sa string, cert, serving *tls.Certificate, inbound []proxy.InboundPort, httpProxy bool) *proxy.Proxy {
	m.t.Helper()
	opts := proxy.Options{Inbound: inbound}
	if httpProxy {
		opts.HTTP = "127.0.0.1:0"
	}
	return m.sidecarWith(name, sa, cert, serving, opts, nil)
}

// sidecarWith starts a sidecar for workload workshop/name with opts
// (Self is filled in), as sidecarServing does. A nil tel keeps the
// access log in m.logs.
func (m *testMesh) sidecarWith(name, sa string, cert, serving *tls.Certificate, opts proxy.Options, tel *proxy.Telemetry) *proxy.Proxy {
	m.t.Helper()
	return m.sidecarCerts(name, sa, cert, staticCerts{serving}, opts, tel)
}

// sidecarCerts is sidecarWith with the data plane's certificates from
// certs, which may rotate them.
func (m *testMesh) sidecarCerts(name, sa string, cert *tls.Certificate, certs proxy.Certs, opts proxy.Options, tel *proxy.Telemetry) *proxy.Proxy {
	m.t.Helper()
	ref := config.WorkloadRef{Namespace: "workshop", Name: name, Labels: map[string]string{"app": name}, Services: []string{name}}
	cc := &proxy.Compiler{Self: proxy.Self{Ref: ref, ServiceAccount: sa}, Keys: jwt.NewKeyStore(jwt.KeyStoreOptions{})}
	store := proxy.NewStore(m.log, cc.Compile)
	m.stores[name] = store
	opts.Self = cc.Self
	if tel == nil {
		logs := &syncLog{}
		m.logs[name] = logs
		tel = &proxy.Telemetry{AccessLog: telemetry.NewAccessLog(logs)}
	}
	p := proxy.New(opts, store, certs, tel, m.log)
	if err := p.Listen(); err != nil {
		m.t.Fatal(err)
	}
	fields := map[string]any{}
	for _, in := range p.Options().Inbound {
		fields[fmt.Sprint(in.Port)] = in.Listen
	}
	meta, _ := structpb.NewStruct(map[string]any{controlplane.MetaInbound: fields})
	conn, err := grpc.NewClient(m.cpLn.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{*cert}, RootCAs: m.roots, ServerName: "palisade-control-plane",
		InsecureSkipVerify: true, // the test CA's server cert has no DNS SAN; the chain is checked by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: m.roots})
			return err
		},
	})))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { conn.Close() })
	xc := &xds.Client{Conn: conn, Node: &corev3.Node{Id: "workshop/" + name, Metadata: meta}, Handler: store, Log: m.log, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	go xc.Run(m.ctx)  //nolint:errcheck
	go p.Serve(m.ctx) //nolint:errcheck
	select {
	case <-store.Ready():
	case <-time.After(10 * time.Second):
		m.t.Fatalf("sidecar %s got no config", name)
	}
	return p
}

// app starts an HTTP app that echoes what it saw.
func app(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s xfcc=%s", r.URL.RequestURI(), r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func proxyClient(p *proxy.Proxy) *http.Client {
	u, _ := url.Parse("http://" + p.Options().HTTP)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 10 * time.Second}
}

const (
	frontendID = "spiffe://cluster.local/ns/workshop/sa/frontend-sa"
	catalogID  = "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"
)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually retries f until it passes or 5 s pass; config pushes are
// asynchronous.
func eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func plainGet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		return fmt.Errorf("answer %q", b)
	}
	return nil
}
