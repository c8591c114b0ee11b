package kube

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/test/kubeapi"
)

// cluster starts an API server with Istio's CRDs installed from istio.io/api.
func cluster(t testing.TB) (*kubeapi.Cluster, dynamic.Interface) {
	t.Helper()
	c := kubeapi.Start(t)
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("go list istio.io/api: %v", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	for _, args := range [][]string{{"apply", "--server-side", "-f", crds}, {"wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"}} {
		if out, err := c.Kubectl(args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c, dyn
}

func apply(t *testing.T, c *kubeapi.Cluster, doc string) {
	t.Helper()
	cmd := exec.Command(c.KubectlPath(), "--kubeconfig="+c.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(doc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v: %s", err, out)
	}
}

// next waits for a snapshot that satisfies ok.
func next(t *testing.T, snaps <-chan *config.Snapshot, what string, ok func(*config.Snapshot) bool) *config.Snapshot {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case s := <-snaps:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no snapshot with %s", what)
		}
	}
}

func TestSourceAndRegistry(t *testing.T) {
	c, dyn := cluster(t)
	c.Namespace(t, "istio-system", nil)
	c.Namespace(t, "shop", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := NewSource(c.Client, dyn, slog.New(slog.NewTextHandler(io.Discard, nil)))
	snaps, stop := src.Subscribe()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx) }()
	defer func() { cancel(); <-errc }()

	first := next(t, snaps, "the first", func(*config.Snapshot) bool { return true })
	if first.Mesh.GetTrustDomain() != "cluster.local" || first.MeshFile != "" {
		t.Errorf("without the istio ConfigMap: trust domain %q from %q, want Istio's defaults", first.Mesh.GetTrustDomain(), first.MeshFile)
	}

	// An object applied at v1beta1 is read (converted to v1) through the
	// file decode path, named namespace/Kind/name.
	apply(t, c, `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRICT}
`)
	s := next(t, snaps, "the PeerAuthentication", func(s *config.Snapshot) bool { return len(s.OfKind(config.KindPeerAuthentication)) == 1 })
	pa := s.OfKind(config.KindPeerAuthentication)[0]
	if pa.Source.File != "shop/PeerAuthentication/default" || pa.Meta.Namespace != "shop" {
		t.Errorf("resource from %s in %q", pa.Source.File, pa.Meta.Namespace)
	}

	// The mesh ConfigMap applies live; a broken one keeps the last good.
	mesh := func(data string) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: MeshConfigMap, Namespace: MeshNamespace}, Data: map[string]string{MeshKey: data}}
		_, err := c.Client.CoreV1().ConfigMaps(MeshNamespace).Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			_, err = c.Client.CoreV1().ConfigMaps(MeshNamespace).Create(ctx, cm, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mesh("rootNamespace: mesh-root\n")
	next(t, snaps, "rootNamespace mesh-root", func(s *config.Snapshot) bool {
		return s.Mesh.GetRootNamespace() == "mesh-root" && s.MeshFile == "istio-system/ConfigMap/istio"
	})
	mesh("rootNamespace: [not, a, string]\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := c.Client.CoreV1().Events(MeshNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + MeshConfigMap})
		if err == nil && len(evs.Items) > 0 && strings.Contains(evs.Items[0].Message, "istio-system/ConfigMap/istio") {
			t.Logf("Event: %s: %s", evs.Items[0].Reason, evs.Items[0].Message)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Event on the broken mesh ConfigMap: %v %+v", err, evs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := src.Current().Mesh.GetRootNamespace(); got != "mesh-root" {
		t.Errorf("mesh after a broken edit: root %q, want the last good mesh-root", got)
	}
	mesh("rootNamespace: other-root\n")
	next(t, snaps, "the next good mesh", func(s *config.Snapshot) bool { return s.Mesh.GetRootNamespace() == "other-root" })

	// Registry: a pod behind a Service through its EndpointSlice.
	c.ServiceAccount(t, "shop", "cart-sa")
	pod, err := c.Client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "cart-7d9f", Namespace: "shop", Labels: map[string]string{"app": "cart"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "cart-sa", Containers: []corev1.Container{{Name: "cart", Image: "cart"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h2c := "kubernetes.io/h2c"
	if _, err := c.Client.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cart"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80}, {Name: "grpc", Port: 9090, AppProtocol: &h2c},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	httpName, grpcName, p8080, p9090 := "http", "grpc", int32(8080), int32(9090)
	if _, err := c.Client.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "cart-x1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "cart"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.2.0.7"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod.Name, Namespace: "shop"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &httpName, Port: &p8080}, {Name: &grpcName, Port: &p9090}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var w *controlplane.Workload
	next(t, snaps, "the pod as a workload with its endpoint", func(s *config.Snapshot) bool {
		for _, x := range src.Registry().Workloads(s) {
			if x.Key.String() == "shop/cart-7d9f" && len(x.Inbound) == 2 {
				w = x
				return true
			}
		}
		return false
	})
	if w.ServiceAccount != "cart-sa" || w.Service != "cart" || w.Labels["app"] != "cart" {
		t.Errorf("workload %+v", w)
	}
	if w.Inbound[80] != "10.2.0.7:8080" || w.Inbound[9090] != "10.2.0.7:9090" {
		t.Errorf("inbound %v, want the EndpointSlice's address and target ports", w.Inbound)
	}
	if len(w.Ports) != 2 || w.Ports[1].Protocol != "HTTP2" || w.Ports[0].Name != "http" {
		t.Errorf("ports %+v", w.Ports)
	}
}
