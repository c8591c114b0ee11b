package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/test/kubeapi"
)

// populate creates nsCount namespaces with perNS pods each, every pod
// behind its own Service and EndpointSlice, as a cluster of that size
// holds them.
func populate(b *testing.B, c *kubeapi.Cluster, nsCount, perNS int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, nsCount)
	sem := make(chan struct{}, 8)
	for n := 0; n < nsCount; n++ {
		ns := fmt.Sprintf("bench-%03d", n)
		c.Namespace(b, ns, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for i := 0; i < perNS; i++ {
				name := fmt.Sprintf("app-%d", i)
				labels := map[string]string{"app": name}
				p, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: name + "-0", Namespace: ns, Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
				}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				if _, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
					Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
				}, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
				port, pn := int32(8080), "http"
				if _, err := c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
					ObjectMeta:  metav1.ObjectMeta{Name: name + "-x", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Endpoints: []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 100+n/100, n%100, i+1)},
						TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: ns}}},
					Ports: []discoveryv1.EndpointPort{{Name: &pn, Port: &port}},
				}, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkSync1000Pods: a control plane's source starting against 1,000
// pods in 100 namespaces (each behind a Service and EndpointSlice), until
// its first snapshot and the registry's 1,000 workloads; then an
// AuthorizationPolicy edit until the snapshot that holds it. Reports the
// sync time, the heap the informers and registry keep, and the edit's
// time to the snapshot (the push to proxies is measured in
// internal/controlplane and bench/).
func BenchmarkSync1000Pods(b *testing.B) {
	c, dyn := cluster(b)
	c.Namespace(b, "istio-system", nil)
	populate(b, c, 100, 10)
	gvr := istioKinds[2].GVR // authorizationpolicies
	b.ResetTimer()
	var syncTotal, editTotal time.Duration
	var heap uint64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithCancel(context.Background())
		src := NewSource(c.Client, dyn, slog.New(slog.NewTextHandler(io.Discard, nil)))
		snaps, stop := src.Subscribe()
		start := time.Now()
		done := make(chan struct{})
		go func() { src.Run(ctx); close(done) }() //nolint:errcheck
		snap := <-snaps
		if n := len(src.Registry().Workloads(snap)); n != 1000 {
			b.Fatalf("%d workloads, want 1000", n)
		}
		syncTotal += time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if after.HeapInuse > before.HeapInuse {
			heap += after.HeapInuse - before.HeapInuse
		}

		name := fmt.Sprintf("edit-%d", i)
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
			"metadata": map[string]any{"name": name, "namespace": "bench-050"},
			"spec":     map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "app-3"}}, "action": "DENY", "rules": []any{map[string]any{}}},
		}}
		start = time.Now()
		if _, err := dyn.Resource(gvr).Namespace("bench-050").Create(ctx, u, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		for s := range snaps {
			if hasResource(s, name) {
				break
			}
		}
		editTotal += time.Since(start)
		stop()
		cancel()
		<-done
	}
	b.ReportMetric(float64(syncTotal.Milliseconds())/float64(b.N), "sync-ms")
	b.ReportMetric(float64(heap)/float64(b.N)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(editTotal.Microseconds())/1000/float64(b.N), "edit-to-snapshot-ms")
}

func hasResource(s *config.Snapshot, name string) bool {
	for _, r := range s.OfKind(config.KindAuthorizationPolicy) {
		if r.Meta.Name == name {
			return true
		}
	}
	return false
}
