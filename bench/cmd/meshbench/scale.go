package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/xds"
)

// scaleParams is the simulated mesh.
type scaleParams struct {
	Workloads, Services, Policies, Namespaces int
}

var (
	scaleFull  = scaleParams{Workloads: 10000, Services: 1000, Policies: 5000, Namespaces: 100}
	scaleQuick = scaleParams{Workloads: 1000, Services: 100, Policies: 500, Namespaces: 10}
)

// scaleResult is what one simulated mesh measured.
type scaleResult struct {
	P       scaleParams
	Workers int
	// FirstConfig: from the first subscription to every proxy holding
	// every type once; Settled: to the last push of the endpoints the
	// proxies announced as they connected.
	FirstConfig, Settled time.Duration
	ConnectPushes        int64
	ConnectBytes         int64 // every response, marshalled as gRPC sends it
	ResourcesPerProxy    float64
	HeapMiB              float64 // the server's live heap with every proxy connected
	Changes              []changeResult
}

// changeResult is one change reaching the simulated proxies through the
// push server.
type changeResult struct {
	What     string
	Duration time.Duration // from the change to the last proxy receiving it
	Rebuild  time.Duration // the server working out the new state (SetSnapshot)
	Reached  int           // proxies sent anything
	Pushes   int64         // responses sent
	Bytes    int64         // their marshalled size
}

func runScaleCmd(args []string) error {
	fs := flag.NewFlagSet("meshbench scale", flag.ContinueOnError)
	p := scaleFull
	fs.IntVar(&p.Workloads, "workloads", p.Workloads, "simulated workloads (one proxy each)")
	fs.IntVar(&p.Services, "services", p.Services, "services the workloads back")
	fs.IntVar(&p.Policies, "policies", p.Policies, "AuthorizationPolicies")
	fs.IntVar(&p.Namespaces, "namespaces", p.Namespaces, "namespaces")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := runScale(p)
	if err != nil {
		return err
	}
	fmt.Fprint(os.Stdout, r.markdown())
	return nil
}

// scaleMesh builds the simulated snapshot: services backed by equal
// numbers of workloads spread over namespaces; policies spread over the
// services (selector ALLOWs), with one namespace-wide ALLOW per namespace
// and one mesh-wide DENY in the root namespace. ns0Source is the source
// namespace of ns-0's namespace-wide ALLOW; extra workloads are added to
// svc-0 beyond p.Workloads.
func scaleMesh(p scaleParams, rootPolicy, ns0Source string, extra int) (*config.Snapshot, []*controlplane.Workload) {
	snap := &config.Snapshot{Mesh: config.DefaultMesh()}
	root := snap.Mesh.GetRootNamespace()
	add := func(kind config.Kind, ns, name string, labels map[string]string, spec any) {
		snap.Resources = append(snap.Resources, &config.Resource{Kind: kind, Meta: config.Meta{Namespace: ns, Name: name, Labels: labels}, Spec: spec})
	}
	svcNS := func(s int) string { return fmt.Sprintf("ns-%d", s%p.Namespaces) }
	add(config.KindPeerAuthentication, root, "default", nil, &securityv1beta1.PeerAuthentication{
		Mtls: &securityv1beta1.PeerAuthentication_MutualTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_STRICT}})
	add(config.KindAuthorizationPolicy, root, "mesh-deny", nil, &securityv1beta1.AuthorizationPolicy{
		Action: securityv1beta1.AuthorizationPolicy_DENY,
		Rules: []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{
			Paths: []string{rootPolicy}}}}}},
	})
	var workloads []*controlplane.Workload
	for i := range p.Workloads + extra {
		s := i % p.Services
		if i >= p.Workloads {
			s = 0
		}
		ns, svc := svcNS(s), fmt.Sprintf("svc-%d", s)
		name := fmt.Sprintf("%s-%d", svc, i/p.Services)
		spec := &config.WorkloadSpec{ServiceAccount: svc, Service: svc, Command: "app",
			Ports: []config.WorkloadPort{{Name: "http", Number: 8080, Protocol: "HTTP"}}}
		add(config.KindWorkload, ns, name, map[string]string{"app": svc}, spec)
		workloads = append(workloads, &controlplane.Workload{
			Key: controlplane.WorkloadKey{Namespace: ns, Name: name}, Labels: map[string]string{"app": svc},
			ServiceAccount: svc, Service: svc, Ports: spec.Ports,
			Inbound: map[uint32]string{8080: fmt.Sprintf("10.%d.%d.%d:15006", i>>16&255, i>>8&255, i&255)},
		})
	}
	for n := range p.Namespaces {
		ns := fmt.Sprintf("ns-%d", n)
		src := ns
		if n == 0 {
			src = ns0Source
		}
		add(config.KindAuthorizationPolicy, ns, "namespace-allow", nil, &securityv1beta1.AuthorizationPolicy{
			Rules: []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Namespaces: []string{src}}}}}},
		})
	}
	for i := p.Namespaces + 1; i < p.Policies; i++ {
		s := i % p.Services
		add(config.KindAuthorizationPolicy, svcNS(s), fmt.Sprintf("allow-%d", i), nil, &securityv1beta1.AuthorizationPolicy{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("svc-%d", s)}},
			Rules: []*securityv1beta1.Rule{{
				From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Principals: []string{
					fmt.Sprintf("cluster.local/ns/%s/sa/svc-%d", svcNS(s+1), s+1)}}}},
				To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Methods: []string{"GET", "POST"},
					Paths: []string{fmt.Sprintf("/api/v%d/*", i%3)}}}},
			}},
		})
	}
	config.SortResources(snap.Resources)
	return snap, workloads
}

// simProxy is one simulated proxy on an in-process stream of the real
// push server: what the server sends is marshalled as gRPC would, and
// ACKed at once, as a proxy does.
type simProxy struct {
	grpc.ServerStream // not used: the server calls only the methods below
	ctx               context.Context
	id                string
	reqs              chan *discoveryv3.DeltaDiscoveryRequest
	sink              *simSink
	types             atomic.Int32
	seen              sync.Map      // type URL → struct{}
	hit               atomic.Uint64 // the sink's epoch this proxy last counted in
}

// simSink counts what every simulated proxy receives.
type simSink struct {
	pushes, bytes, resources atomic.Int64
	last                     atomic.Int64 // UnixNano of the latest send
	// watch, when set, is told of every response; it returns true when
	// the response is the one a measurement waits for.
	watch   atomic.Pointer[func(p *simProxy, r *discoveryv3.DeltaDiscoveryResponse) bool]
	epoch   atomic.Uint64
	reached atomic.Int64
	done    chan struct{}
	target  int64
}

func (p *simProxy) Context() context.Context { return p.ctx }

func (p *simProxy) Recv() (*discoveryv3.DeltaDiscoveryRequest, error) {
	select {
	case r := <-p.reqs:
		return r, nil
	case <-p.ctx.Done():
		return nil, io.EOF
	}
}

func (p *simProxy) Send(r *discoveryv3.DeltaDiscoveryResponse) error {
	b, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	s := p.sink
	s.pushes.Add(1)
	s.bytes.Add(int64(len(b)))
	s.resources.Add(int64(len(r.GetResources())))
	s.last.Store(time.Now().UnixNano())
	if _, loaded := p.seen.LoadOrStore(r.GetTypeUrl(), struct{}{}); !loaded {
		p.types.Add(1)
	}
	if w := s.watch.Load(); w != nil && (*w)(p, r) {
		if e := s.epoch.Load(); p.hit.Swap(e) != e && s.reached.Add(1) == s.target {
			close(s.done)
		}
	}
	p.reqs <- &discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()}
	return nil
}

// expect arms the sink to wait for n proxies to see what match matches.
func (s *simSink) expect(n int, match func(*simProxy, *discoveryv3.DeltaDiscoveryResponse) bool) {
	s.watch.Store(nil)
	s.epoch.Add(1)
	s.reached.Store(0)
	s.target = int64(n)
	s.done = make(chan struct{})
	s.watch.Store(&match)
}

// holdsEveryType matches once a proxy has received every type.
func holdsEveryType(p *simProxy, _ *discoveryv3.DeltaDiscoveryResponse) bool {
	return p.types.Load() == int32(len(xds.AllTypes))
}

func (s *simSink) counters() (pushes, bytes int64) { return s.pushes.Load(), s.bytes.Load() }

// settle waits until nothing has been sent for quiet, and returns when
// the last send was.
func (s *simSink) settle(quiet time.Duration) time.Time {
	for {
		last := time.Unix(0, s.last.Load())
		if time.Since(last) >= quiet {
			return last
		}
		time.Sleep(quiet / 10)
	}
}

func (s *simSink) wait(what string, timeout time.Duration) error {
	select {
	case <-s.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("meshbench scale: %s: %d of %d proxies after %s", what, s.reached.Load(), s.target, timeout)
	}
}

func runScale(p scaleParams) (*scaleResult, error) {
	r := &scaleResult{P: p, Workers: runtime.GOMAXPROCS(0)}
	snap, ws := scaleMesh(p, "/admin/*", "ns-0", 0)
	srv := controlplane.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), controlplane.ConfigRegistry{}, nil)
	if err := srv.SetBundle([]byte(testBundlePEM)); err != nil {
		return nil, err
	}
	if err := srv.SetSnapshot(snap); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &simSink{}
	sink.expect(len(ws), holdsEveryType)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start := func(w *controlplane.Workload) error {
		inbound := map[string]any{}
		for port, addr := range w.Inbound {
			inbound[fmt.Sprint(port)] = addr
		}
		meta, err := structpb.NewStruct(map[string]any{controlplane.MetaInbound: inbound})
		if err != nil {
			return err
		}
		sp := &simProxy{ctx: ctx, id: w.Key.String(), reqs: make(chan *discoveryv3.DeltaDiscoveryRequest, 64), sink: sink}
		for i, t := range xds.AllTypes {
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}
			if i == 0 {
				req.Node = &corev3.Node{Id: sp.id, Metadata: meta}
			}
			sp.reqs <- req
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.DeltaAggregatedResources(sp)
		}()
		return nil
	}

	t0 := time.Now()
	for _, w := range ws {
		if err := start(w); err != nil {
			return nil, err
		}
	}
	if err := sink.wait("first config", 10*time.Minute); err != nil {
		return nil, err
	}
	r.FirstConfig = time.Since(t0)
	for {
		all := true
		for _, w := range srv.Workloads() {
			if len(w.Inbound) == 0 {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Settled = sink.settle(time.Second).Sub(t0)
	r.ConnectPushes, r.ConnectBytes = sink.counters()
	r.ResourcesPerProxy = float64(sink.resources.Load()) / float64(len(ws))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapMiB = float64(ms.HeapAlloc) / (1 << 20)

	change := func(what string, next *config.Snapshot, want int, match func(*simProxy, *discoveryv3.DeltaDiscoveryResponse) bool, act func() error) error {
		p0, b0 := sink.counters()
		sink.expect(want, match)
		c := changeResult{What: what}
		t0 := time.Now()
		if next != nil {
			if err := srv.SetSnapshot(next); err != nil {
				return err
			}
			c.Rebuild = time.Since(t0)
		}
		if act != nil {
			if err := act(); err != nil {
				return err
			}
		}
		if err := sink.wait(what, 5*time.Minute); err != nil {
			return err
		}
		c.Duration = time.Since(t0)
		sink.settle(500 * time.Millisecond)
		p1, b1 := sink.counters()
		c.Pushes, c.Bytes = p1-p0, b1-b0
		c.Reached = int(sink.reached.Load())
		r.Changes = append(r.Changes, c)
		return nil
	}
	named := func(typ, name string) func(*simProxy, *discoveryv3.DeltaDiscoveryResponse) bool {
		return func(_ *simProxy, resp *discoveryv3.DeltaDiscoveryResponse) bool {
			if resp.GetTypeUrl() != typ {
				return false
			}
			for _, x := range resp.GetResources() {
				if x.GetName() == name {
					return true
				}
			}
			return false
		}
	}
	root := snap.Mesh.GetRootNamespace()

	// A mesh-wide policy: every proxy holds it, so every proxy gets the
	// one changed resource.
	snap2, _ := scaleMesh(p, "/admin/v2/*", "ns-0", 0)
	if err := change("edit the root namespace's DENY policy (applies to every proxy)", snap2, len(ws),
		named(xds.TypeAuthorizationPolicy, root+"/mesh-deny"), nil); err != nil {
		return nil, err
	}
	// A namespace's policy: only that namespace's proxies hear of it.
	inNS0 := 0
	for _, w := range ws {
		if w.Key.Namespace == "ns-0" {
			inNS0++
		}
	}
	snap3, _ := scaleMesh(p, "/admin/v2/*", "ns-1", 0)
	if err := change("edit one namespace's ALLOW policy (applies to that namespace's proxies)", snap3, inNS0,
		named(xds.TypeAuthorizationPolicy, "ns-0/namespace-allow"), nil); err != nil {
		return nil, err
	}
	// A new workload of svc-0 connects and announces its address: every
	// proxy gets svc-0's new endpoints, after the endpoint debounce.
	snap4, ws4 := scaleMesh(p, "/admin/v2/*", "ns-1", 1)
	if err := srv.SetSnapshot(snap4); err != nil {
		return nil, err
	}
	sink.settle(500 * time.Millisecond)
	svc0 := ws4[len(ws4)-1]
	if err := change("a new workload of one service announces its address (every proxy gets the service's endpoints)", nil, len(ws)+1,
		named(xds.TypeServiceEntry, svc0.Key.Namespace+"/"+svc0.Service), func() error { return start(svc0) }); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *scaleResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Simulated mesh: %d workloads (one proxy each), %d services, %d AuthorizationPolicies, %d namespaces, on the real push server (`controlplane.Server`) with %d in-process streams; GOMAXPROCS %d. ",
		r.P.Workloads, r.P.Services, r.P.Policies, r.P.Namespaces, r.P.Workloads, r.Workers)
	b.WriteString("Each simulated proxy subscribes as a sidecar does (node metadata with its inbound address), and each response is marshalled as gRPC marshals it and ACKed; there is no network.\n\n")
	fmt.Fprintf(&b, "| measure | value |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| every proxy subscribed and holding every type once | %s |\n", r.FirstConfig.Round(time.Millisecond))
	fmt.Fprintf(&b, "| ... and the endpoints all proxies announced, pushed to all | %s (%s responses, %s bytes, %.0f resources per proxy) |\n",
		r.Settled.Round(time.Millisecond), thousands(r.ConnectPushes), thousands(r.ConnectBytes), r.ResourcesPerProxy)
	fmt.Fprintf(&b, "| server heap with every proxy connected | %.0f MiB |\n", r.HeapMiB)
	for _, c := range r.Changes {
		rebuild := ""
		if c.Rebuild > 0 {
			rebuild = fmt.Sprintf("; rebuild %s of it", c.Rebuild.Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "| %s | %s to reach all %s that need it%s; %s responses, %s bytes in all |\n",
			c.What, c.Duration.Round(time.Millisecond), thousands(int64(c.Reached)), rebuild, thousands(c.Pushes), thousands(c.Bytes))
	}
	return b.String()
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, out...), ",")
}

// testBundlePEM is a stand-in trust bundle: Generate only wraps it.
const testBundlePEM = `-----BEGIN CERTIFICATE-----
MIIBJzCBzqADAgECAgEBMAoGCCqGSM49BAMCMBAxDjAMBgNVBAMTBWJlbmNoMB4X
DTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAwMDAwMFowEDEOMAwGA1UEAxMFYmVuY2gw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAoxMwETAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAIgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAA=
-----END CERTIFICATE-----
`
