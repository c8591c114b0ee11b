package kube

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/xds"
)

// pushProxy is one simulated sidecar on the control plane's push stream:
// the server sees a peer holding a certificate for the pod's service
// account (verified as a real sidecar's is), and every response is ACKed.
// It records when it first received a response holding want.
type pushProxy struct {
	grpc.ServerStream // not used: the push server calls only the methods below
	ctx               context.Context
	reqs              chan *discoveryv3.DeltaDiscoveryRequest
	want              atomic.Pointer[[]byte]
	got               chan time.Time
	connected         chan struct{}
	once              sync.Once
}

func (p *pushProxy) Context() context.Context { return p.ctx }

func (p *pushProxy) Recv() (*discoveryv3.DeltaDiscoveryRequest, error) {
	select {
	case r := <-p.reqs:
		return r, nil
	case <-p.ctx.Done():
		return nil, io.EOF
	}
}

func (p *pushProxy) Send(r *discoveryv3.DeltaDiscoveryResponse) error {
	p.once.Do(func() { close(p.connected) })
	if w := p.want.Load(); w != nil {
		b, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		if bytes.Contains(b, *w) {
			p.want.Store(nil)
			p.got <- time.Now()
		}
	}
	p.reqs <- &discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()}
	return nil
}

// BenchmarkPolicyEditTo1000Proxies: a control plane in Kubernetes mode
// (kube.Source and kube.Registry against a real API server holding 1,000
// pods in 100 namespaces), 1,000 simulated sidecars connected to its push
// server as their pods' service accounts; then a mesh-wide
// AuthorizationPolicy created in istio-system through the API server,
// and the time until every one of the 1,000 has received it. Reports the
// sync time to the first snapshot, the control plane's heap with 1,000
// proxies connected, and the edit's p50 and max time to reach the
// proxies over b.N edits.
func BenchmarkPolicyEditTo1000Proxies(b *testing.B) {
	const nsCount, perNS = 100, 10
	c, dyn := cluster(b)
	c.Namespace(b, "istio-system", nil)
	populate(b, c, nsCount, perNS)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	auth, err := ca.Init(b.TempDir(), ca.Options{TrustDomain: td})
	if err != nil {
		b.Fatal(err)
	}
	src := NewSource(c.Client, dyn, log)
	go src.Run(ctx) //nolint:errcheck
	start := time.Now()
	d, err := controlplane.StartDaemon(ctx, controlplane.DaemonOptions{
		Source: src, Registry: src.Registry(), Authority: auth, ExactCSRIdentity: true,
		GRPCListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", Log: log,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Stop()
	synced := time.Since(start)

	// One certificate per namespace's default service account.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		b.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	var proxies []*pushProxy
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for n := 0; n < nsCount; n++ {
		ns := fmt.Sprintf("bench-%03d", n)
		chain, err := auth.Sign(ctx, ca.Request{CSR: csr, ID: spiffeid.RequireFromPath(td, "/ns/"+ns+"/sa/default")})
		if err != nil {
			b.Fatal(err)
		}
		pctx := peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: chain}}})
		for i := 0; i < perNS; i++ {
			p := &pushProxy{ctx: pctx, reqs: make(chan *discoveryv3.DeltaDiscoveryRequest, 64), got: make(chan time.Time, 1), connected: make(chan struct{})}
			for j, t := range xds.AllTypes {
				req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}
				if j == 0 {
					req.Node = &corev3.Node{Id: fmt.Sprintf("%s/app-%d-0", ns, i)}
				}
				p.reqs <- req
			}
			proxies = append(proxies, p)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.Push.DeltaAggregatedResources(p); err != nil && ctx.Err() == nil {
					b.Errorf("proxy %s: %v", p.ctx, err)
				}
			}()
		}
	}
	for _, p := range proxies {
		select {
		case <-p.connected:
		case <-time.After(2 * time.Minute):
			b.Fatal("a simulated proxy got no config within 2m")
		}
	}
	time.Sleep(time.Second) // let the connect pushes settle
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	gvr := istioKinds[2].GVR // authorizationpolicies
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("mesh-edit-%d", i)
		want := []byte(name)
		for _, p := range proxies {
			p.want.Store(&want)
		}
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
			"metadata": map[string]any{"name": name, "namespace": "istio-system"},
			"spec": map[string]any{"action": "DENY", "rules": []any{map[string]any{
				"to": []any{map[string]any{"operation": map[string]any{"paths": []any{"/" + name}}}}}}},
		}}
		t0 := time.Now()
		if _, err := dyn.Resource(gvr).Namespace("istio-system").Create(ctx, u, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for _, p := range proxies {
			select {
			case at := <-p.got:
				if at.After(last) {
					last = at
				}
			case <-time.After(time.Minute):
				b.Fatalf("edit %d: a proxy did not receive it within 1m", i)
			}
		}
		took = append(took, last.Sub(t0))
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(synced.Milliseconds()), "sync-ms")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "edit-p50-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "edit-max-ms")
	b.ReportMetric(float64(len(proxies)), "proxies")
}
