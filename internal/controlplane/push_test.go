package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/xds"
)

const pushWorkloads = `
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  serviceAccount: web-sa
  command: x
  ports: [{name: http, number: 8080, protocol: HTTP}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: shop, labels: {app: client}}
spec:
  serviceAccount: client-sa
  command: x
  ports: [{name: http, number: 8080, protocol: HTTP}]
---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: other, namespace: books, labels: {app: web}}
spec:
  serviceAccount: other-sa
  command: x
  ports: [{name: http, number: 8080, protocol: HTTP}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
`

const pushWebPolicy = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - to: [{operation: {methods: [%s]}}]
`

// recorder is a proxy's xds.Handler that keeps every push it applies.
type recorder struct {
	mu     sync.Mutex
	held   map[string]map[string]string // type → name → version
	pushes []push
	nack   map[string]error // type → error to NACK with
	wake   chan struct{}
}

type push struct {
	typeURL  string
	upserted []string
	removed  []string
}

func newRecorder() *recorder {
	return &recorder{held: map[string]map[string]string{}, nack: map[string]error{}, wake: make(chan struct{}, 1)}
}

func (r *recorder) Apply(t string, ups []*xds.Resource, removed []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := push{typeURL: t, removed: removed}
	for _, u := range ups {
		p.upserted = append(p.upserted, u.Name)
	}
	sort.Strings(p.upserted)
	r.pushes = append(r.pushes, p)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	if err := r.nack[t]; err != nil {
		return err
	}
	m := r.held[t]
	if m == nil {
		m = map[string]string{}
		r.held[t] = m
	}
	for _, u := range ups {
		m[u.Name] = u.Version
	}
	for _, n := range removed {
		delete(m, n)
	}
	return nil
}

// names is what the proxy holds of one type, sorted.
func (r *recorder) names(t string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.held[t] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// since returns the pushes after the first n.
func (r *recorder) since(n int) []push {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]push(nil), r.pushes[n:]...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pushes)
}

type pushFixture struct {
	t   *testing.T
	dir string
	srv *Server
	lis *bufconn.Listener
	ctx context.Context
}

func newPushFixture(t *testing.T, files map[string]string) *pushFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &pushFixture{t: t, dir: t.TempDir(), ctx: ctx, lis: bufconn.Listen(1 << 20)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.srv = NewServer(log, ConfigRegistry{}, nil)
	if err := f.srv.SetBundle([]byte(testBundle)); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, f.dir, files)
	f.reload()
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, f.srv)
	go gs.Serve(f.lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	return f
}

func (f *pushFixture) write(name, body string) {
	f.t.Helper()
	writeFiles(f.t, f.dir, map[string]string{name: body})
}

func (f *pushFixture) remove(name string) {
	f.t.Helper()
	if err := os.Remove(filepath.Join(f.dir, name)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *pushFixture) reload() {
	f.t.Helper()
	snap, err := config.Load(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.srv.SetSnapshot(snap); err != nil {
		f.t.Fatal(err)
	}
}

// connect subscribes a proxy for workload id (namespace/name) that
// announces inbound (service port → address), and waits until it has
// received every type once.
func (f *pushFixture) connect(id string, inbound map[string]any) *recorder {
	f.t.Helper()
	r := newRecorder()
	f.subscribe(id, inbound, r)
	f.waitTypes(r)
	return r
}

// dial opens a client connection to the fixture's server.
func (f *pushFixture) dial() *grpc.ClientConn {
	f.t.Helper()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return f.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return conn
}

func (f *pushFixture) subscribe(id string, inbound map[string]any, h xds.Handler) context.CancelFunc {
	f.t.Helper()
	conn := f.dial()
	meta, err := structpb.NewStruct(map[string]any{MetaInbound: inbound})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	c := &xds.Client{Conn: conn, Node: &corev3.Node{Id: id, Metadata: meta}, Handler: h,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	go c.Run(ctx) //nolint:errcheck // ends with ctx
	return cancel
}

func (f *pushFixture) waitTypes(r *recorder) {
	f.t.Helper()
	f.eventually("every type pushed once", func() error {
		seen := map[string]bool{}
		for _, p := range r.since(0) {
			seen[p.typeURL] = true
		}
		for _, t := range xds.AllTypes {
			if !seen[t] {
				return fmt.Errorf("no push of %s yet", t)
			}
		}
		return nil
	})
}

func (f *pushFixture) eventually(what string, cond func() error) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiet waits long enough for any push in flight, then returns the
// pushes r got after the first n.
func (f *pushFixture) quiet(r *recorder, n int) []push {
	time.Sleep(EndpointDebounce + 100*time.Millisecond)
	return r.since(n)
}

func TestPushSendsEachProxyItsOwnPolicies(t *testing.T) {
	f := newPushFixture(t, map[string]string{"w.yaml": pushWorkloads, "p.yaml": fmt.Sprintf(pushWebPolicy, "GET")})
	web := f.connect("shop/web", nil)
	client := f.connect("shop/client", nil)
	other := f.connect("books/other", nil)

	for _, c := range []struct {
		name string
		r    *recorder
		want string
	}{
		{"selected workload", web, "shop/web-allow"},
		{"same namespace, not selected", client, ""},
		{"same labels, other namespace", other, ""},
	} {
		if got := strings.Join(c.r.names(xds.TypeAuthorizationPolicy), ","); got != c.want {
			t.Errorf("%s: AuthorizationPolicies %q, want %q", c.name, got, c.want)
		}
		if got := strings.Join(c.r.names(xds.TypePeerAuthentication), ","); got != "istio-system/default" {
			t.Errorf("%s: mesh-wide PeerAuthentication %q, want istio-system/default", c.name, got)
		}
		if got := strings.Join(c.r.names(xds.TypeServiceEntry), ","); got != "books/other,shop/client,shop/web" {
			t.Errorf("%s: services %q", c.name, got)
		}
		if got := strings.Join(c.r.names(xds.TypeSecret), ","); got != xds.RootCAName {
			t.Errorf("%s: secrets %q", c.name, got)
		}
	}
}

func TestPushSendsOnlyWhatChanged(t *testing.T) {
	f := newPushFixture(t, map[string]string{"w.yaml": pushWorkloads, "p.yaml": fmt.Sprintf(pushWebPolicy, "GET")})
	web := f.connect("shop/web", nil)
	client := f.connect("shop/client", nil)
	nWeb, nClient := web.count(), client.count()

	// Edit the policy: web gets that one resource, nothing else; client,
	// which the policy does not select, gets nothing at all.
	f.write("p.yaml", fmt.Sprintf(pushWebPolicy, "GET, POST"))
	f.reload()
	f.eventually("edited policy pushed to web", func() error {
		if web.count() == nWeb {
			return errors.New("nothing pushed")
		}
		return nil
	})
	got := f.quiet(web, nWeb)
	want := []push{{typeURL: xds.TypeAuthorizationPolicy, upserted: []string{"shop/web-allow"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("web after the edit got %v, want %v", got, want)
	}
	if got := client.since(nClient); len(got) != 0 {
		t.Errorf("client, not selected, got %v", got)
	}

	// The same config again (a new snapshot version, nothing different)
	// pushes nothing to anyone.
	nWeb = web.count()
	f.reload()
	if got := f.quiet(web, nWeb); len(got) != 0 {
		t.Errorf("an unchanged snapshot pushed %v", got)
	}

	// Remove it: web is told to drop it by name.
	f.remove("p.yaml")
	f.reload()
	f.eventually("removal pushed", func() error {
		if len(web.names(xds.TypeAuthorizationPolicy)) != 0 {
			return fmt.Errorf("web still holds %v", web.names(xds.TypeAuthorizationPolicy))
		}
		return nil
	})
	got = f.quiet(web, nWeb)
	want = []push{{typeURL: xds.TypeAuthorizationPolicy, removed: []string{"shop/web-allow"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("web after the removal got %v, want %v", got, want)
	}
}

func TestPushAnnouncedEndpointsReachOtherProxies(t *testing.T) {
	f := newPushFixture(t, map[string]string{"w.yaml": pushWorkloads})
	client := f.connect("shop/client", nil)
	n := client.count()
	// Two proxies announce their addresses at once: one rebuild, and the
	// client sees both endpoints.
	f.connect("shop/web", map[string]any{"8080": "127.0.0.1:15001"})
	f.connect("books/other", map[string]any{"8080": "127.0.0.1:15002"})
	f.eventually("endpoints pushed", func() error {
		eps := map[string]string{}
		for _, name := range []string{"shop/web", "books/other"} {
			se := f.srv.input.Load().gen.shared[xds.TypeServiceEntry].ByName[name]
			if se == nil {
				return fmt.Errorf("no service %s", name)
			}
			var spec networkingv1alpha3.ServiceEntry
			if err := se.Any.UnmarshalTo(&spec); err != nil {
				return err
			}
			for _, e := range spec.GetEndpoints() {
				eps[name] = fmt.Sprintf("%s:%d", e.GetAddress(), e.GetPorts()["http"])
			}
		}
		if eps["shop/web"] != "127.0.0.1:15001" || eps["books/other"] != "127.0.0.1:15002" {
			return fmt.Errorf("endpoints %v", eps)
		}
		return nil
	})
	got := f.quiet(client, n)
	var services []string
	for _, p := range got {
		if p.typeURL != xds.TypeServiceEntry {
			t.Errorf("client got a push of %s for endpoints elsewhere: %v", p.typeURL, p)
		}
		services = append(services, p.upserted...)
		if len(p.removed) > 0 {
			t.Errorf("client told to remove %v", p.removed)
		}
	}
	sort.Strings(services)
	// One debounced rebuild may or may not catch both announcements; each
	// service arrives once per change of its endpoints, never the rest.
	for _, s := range services {
		if s != "books/other" && s != "shop/web" {
			t.Errorf("client was sent %s, whose endpoints did not change", s)
		}
	}
	if len(services) < 2 || len(services) > 3 {
		t.Errorf("client got services %v, want each of books/other and shop/web once (one of them at most twice)", services)
	}
}

func TestPushSharesMeshWideTypesBetweenProxies(t *testing.T) {
	f := newPushFixture(t, map[string]string{"w.yaml": pushWorkloads, "p.yaml": fmt.Sprintf(pushWebPolicy, "GET")})
	st := f.srv.input.Load()
	a := st.gen.set(Proxy{Workload: st.workloads[WorkloadKey{"shop", "web"}]})
	b := st.gen.set(Proxy{Workload: st.workloads[WorkloadKey{"books", "other"}]})
	for _, typ := range []string{xds.TypeServiceEntry, xds.TypeSecret, xds.TypeMeshConfig} {
		if a[typ] == nil || a[typ] != b[typ] {
			t.Errorf("%s: two proxies hold different sets (%p, %p), want the one shared set", typ, a[typ], b[typ])
		}
	}
	// A policy edit leaves the services as they were: the next state keeps
	// the very same set, so no proxy is even diffed for it.
	f.write("p.yaml", fmt.Sprintf(pushWebPolicy, "PUT"))
	f.reload()
	next := f.srv.input.Load()
	if next.gen.shared[xds.TypeServiceEntry] != st.gen.shared[xds.TypeServiceEntry] {
		t.Error("a policy edit made a new services set")
	}
	if next.gen.shared[xds.TypeAuthorizationPolicy] != nil {
		t.Error("policies are in the shared sets")
	}
	if got := next.gen.set(Proxy{Workload: next.workloads[WorkloadKey{"shop", "web"}]})[xds.TypeAuthorizationPolicy].Len(); got != 1 {
		t.Errorf("web's policies after the edit: %d, want 1", got)
	}
}

func TestPushRecordsNack(t *testing.T) {
	f := newPushFixture(t, map[string]string{"w.yaml": pushWorkloads, "p.yaml": fmt.Sprintf(pushWebPolicy, "GET")})
	r := newRecorder()
	r.nack[xds.TypeAuthorizationPolicy] = errors.New("policy does not compile")
	f.subscribe("shop/web", nil, r)
	f.waitTypes(r)
	f.eventually("NACK recorded", func() error {
		for _, p := range f.srv.Proxies() {
			if p.ID == "shop/web" && strings.Contains(p.LastNack, "policy does not compile") {
				return nil
			}
		}
		return fmt.Errorf("proxies %+v", f.srv.Proxies())
	})
	// Other types were ACKed.
	for _, p := range f.srv.Proxies() {
		if p.ID == "shop/web" && p.Acked[xds.TypeServiceEntry] == "" {
			t.Errorf("ServiceEntry not ACKed: %v", p.Acked)
		}
	}
}

func TestPushRefusesUnknownWorkload(t *testing.T) {
	f := newPushFixture(t, map[string]string{"w.yaml": pushWorkloads})
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(f.dial()).DeltaAggregatedResources(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "shop/ghost"}, TypeUrl: xds.TypeSecret}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if err == nil || !strings.Contains(err.Error(), "no workload shop/ghost") {
		t.Fatalf("a proxy for a workload not in the config got %v, want NotFound naming it", err)
	}
}

// A proxy that resubscribes saying what it holds (as after a control
// plane restart) is sent only what differs.
func TestPushResubscribeWithVersions(t *testing.T) {
	f := newPushFixture(t, map[string]string{"w.yaml": pushWorkloads, "p.yaml": fmt.Sprintf(pushWebPolicy, "GET")})
	first := f.connect("shop/web", nil)
	held := map[string]map[string]string{}
	for _, typ := range xds.AllTypes {
		first.mu.Lock()
		held[typ] = map[string]string{}
		for k, v := range first.held[typ] {
			held[typ][k] = v
		}
		first.mu.Unlock()
	}
	f.write("p.yaml", fmt.Sprintf(pushWebPolicy, "DELETE"))
	f.reload()

	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(f.dial()).DeltaAggregatedResources(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range xds.AllTypes {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ, InitialResourceVersions: held[typ]}
		if i == 0 {
			req.Node = &corev3.Node{Id: "shop/web"}
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string][]string{}
	for range xds.AllTypes {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResources() {
			got[resp.GetTypeUrl()] = append(got[resp.GetTypeUrl()], r.GetName())
		}
	}
	want := map[string][]string{xds.TypeAuthorizationPolicy: {"shop/web-allow"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resubscribed with its versions, the proxy got %v, want %v", got, want)
	}
}

// testBundle is a stand-in trust bundle: the push server only wraps it.
const testBundle = `-----BEGIN CERTIFICATE-----
MIIBJzCBzqADAgECAgEBMAoGCCqGSM49BAMCMBAxDjAMBgNVBAMTBWJlbmNoMB4X
-----END CERTIFICATE-----
`
