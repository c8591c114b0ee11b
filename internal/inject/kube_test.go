package inject_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"palisade.dev/palisade/internal/analyze"
	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/inject"
	"palisade.dev/palisade/internal/install"
	"palisade.dev/palisade/test/kubeapi"
)

// TestKubeAPIServer runs the webhooks behind a real kube-apiserver: the
// manifests of `palisade install --apply` (with the webhooks' URL on
// loopback and the mesh CA's roots as caBundle), then pods and policies
// created through the API server as a user would.
func TestKubeAPIServer(t *testing.T) {
	c := kubeapi.Start(t)
	ctx := context.Background()
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))

	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	authority, err := ca.Init(filepath.Join(t.TempDir(), "ca"), ca.Options{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	getCert, err := inject.MeshCertificate(authority, []string{"palisade.istio-system.svc"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := inject.Defaults()
	cfg.Image = "registry.example/palisade-proxy:1.0"
	hooks, err := inject.New(cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := inject.Listen("127.0.0.1:0", hooks.Handler(), getCert, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	v := install.Defaults()
	v.Image, v.ProxyImage = "registry.example/palisade:1.0", cfg.Image
	v.CABundle = authority.Bundle().MarshalPEM()
	v.WebhookURL = "https://" + srv.Addr()
	var applied bytes.Buffer
	if err := install.Apply(ctx, c.Config, v, &applied); err != nil {
		t.Fatalf("install --apply: %v\n%s", err, applied.String())
	}
	for _, want := range []string{"CustomResourceDefinition/authorizationpolicies.security.istio.io", "Deployment/palisade", "MutatingWebhookConfiguration/palisade-sidecar-injector"} {
		if !strings.Contains(applied.String(), want+" serverside-applied") {
			t.Errorf("install --apply did not apply %s:\n%s", want, applied.String())
		}
	}
	// Applied again: server-side apply is idempotent.
	if err := install.Apply(ctx, c.Config, v, io.Discard); err != nil {
		t.Fatalf("second install --apply: %v", err)
	}

	c.Namespace(t, "shop", map[string]string{inject.LabelInjection: "enabled"})
	c.Namespace(t, "plain", nil)
	c.Namespace(t, "canary", map[string]string{inject.LabelRevision: "default"})
	c.ServiceAccount(t, "shop", "web")

	t.Run("injected", func(t *testing.T) {
		created := createPod(t, c, "shop", "web-1", nil)
		got, err := c.Client.CoreV1().Pods("shop").Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		names := func(cs []corev1.Container) []string {
			var out []string
			for _, c := range cs {
				out = append(out, c.Name)
			}
			return out
		}
		if n := names(got.Spec.Containers); !slices.Equal(n, []string{"web", inject.ProxyContainer}) {
			t.Fatalf("stored pod's containers %v", n)
		}
		if n := names(got.Spec.InitContainers); !slices.Equal(n, []string{inject.InitContainer}) {
			t.Fatalf("stored pod's init containers %v", n)
		}
		proxy := got.Spec.Containers[1]
		if *proxy.SecurityContext.RunAsUser != inject.ProxyUID || proxy.Image != cfg.Image {
			t.Errorf("sidecar uid %d image %s", *proxy.SecurityContext.RunAsUser, proxy.Image)
		}
		var token bool
		for _, vol := range got.Spec.Volumes {
			if vol.Name == "istio-token" && vol.Projected != nil {
				st := vol.Projected.Sources[0].ServiceAccountToken
				token = st != nil && st.Audience == "istio-ca" && st.Path == "istio-token"
			}
		}
		if !token {
			t.Errorf("no istio-ca token volume in %+v", got.Spec.Volumes)
		}
		app := got.Spec.Containers[0]
		if h := app.LivenessProbe.HTTPGet; h == nil || h.Path != "/app-health/web/livez" || h.Port.IntValue() != inject.StatusPort {
			t.Errorf("liveness probe not rewritten: %+v", app.LivenessProbe.ProbeHandler)
		}
		if h := app.ReadinessProbe.HTTPGet; h == nil || h.Path != "/app-health/web/readyz" || h.Port.IntValue() != inject.StatusPort {
			t.Errorf("readiness probe not rewritten: %+v", app.ReadinessProbe.ProbeHandler)
		}
		var probers string
		for _, e := range proxy.Env {
			if e.Name == "ISTIO_KUBE_APP_PROBERS" {
				probers = e.Value
			}
		}
		if !strings.Contains(probers, `"/app-health/web/livez":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"}`) {
			t.Errorf("ISTIO_KUBE_APP_PROBERS %s", probers)
		}
		if got.Annotations[inject.AnnotationStatus] == "" || got.Labels[inject.LabelTLSMode] != "istio" {
			t.Errorf("annotations %v labels %v", got.Annotations, got.Labels)
		}
	})

	t.Run("revision label injects", func(t *testing.T) {
		got := createPod(t, c, "canary", "web-4", nil)
		if len(got.Spec.Containers) != 2 || got.Spec.Containers[1].Name != inject.ProxyContainer {
			t.Fatalf("pod in an istio.io/rev=default namespace not injected: %d containers", len(got.Spec.Containers))
		}
	})

	t.Run("pod label opts in", func(t *testing.T) {
		p := podSpec("plain", "web-5", nil)
		p.Labels[inject.AnnotationInject] = "true"
		got, err := c.Client.CoreV1().Pods("plain").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.Containers) != 2 || got.Spec.Containers[1].Name != inject.ProxyContainer {
			t.Fatalf("pod labelled sidecar.istio.io/inject=true not injected: %d containers", len(got.Spec.Containers))
		}
	})

	t.Run("opt-out unchanged", func(t *testing.T) {
		got := createPod(t, c, "shop", "web-2", map[string]string{inject.AnnotationInject: "false"})
		unchanged(t, got)
	})
	t.Run("unlabelled namespace unchanged", func(t *testing.T) {
		got := createPod(t, c, "plain", "web-3", nil)
		unchanged(t, got)
	})

	t.Run("invalid AuthorizationPolicy refused by kubectl apply", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte(badPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		// What `palisade analyze bad.yaml` prints for it, less the file
		// and line, is what kubectl must show.
		snap, loadErr := config.LoadAll(bad)
		fs := analyze.FromError(loadErr)
		if snap == nil || len(fs) != 1 {
			t.Fatalf("analyze of bad.yaml: %v", fs)
		}
		if want := regexp.MustCompile(regexp.QuoteMeta(bad)+`:\d+: `).ReplaceAllString(fs[0].String(), ""); want != badPolicyMessage {
			t.Fatalf("analyze says\n%s\nthe test expects\n%s", want, badPolicyMessage)
		}
		out, err := c.Kubectl("apply", "-f", bad)
		if err == nil {
			t.Fatalf("kubectl apply of an invalid policy succeeded:\n%s", out)
		}
		if !strings.Contains(out, `denied the request: `+badPolicyMessage) {
			t.Fatalf("kubectl apply said:\n%s\nwant analyze's message:\n%s", out, badPolicyMessage)
		}
		good := filepath.Join(dir, "good.yaml")
		if err := os.WriteFile(good, []byte(strings.Replace(badPolicy, "/api/*/orders", "/api/orders/*", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := c.Kubectl("apply", "-f", good); err != nil {
			t.Fatalf("kubectl apply of a valid policy: %v\n%s", err, out)
		}
		// An update to something invalid is refused too, and the stored
		// object stays as it was.
		if out, err := c.Kubectl("apply", "-f", bad); err == nil || !strings.Contains(out, badPolicyMessage) {
			t.Fatalf("update to an invalid policy: %v\n%s", err, out)
		}
		out, err = c.Kubectl("get", "authorizationpolicy", "-n", "shop", "orders-read", "-o", "jsonpath={.spec.rules[0].to[0].operation.paths[0]}")
		if err != nil || out != "/api/orders/*" {
			t.Fatalf("stored policy path %q (%v)", out, err)
		}
	})
	if t.Failed() {
		t.Logf("webhook log:\n%s", logs.String())
	}
}

// createPod creates an app pod with HTTP probes through the API server.
func createPod(t *testing.T, c *kubeapi.Cluster, ns, name string, ann map[string]string) *corev1.Pod {
	t.Helper()
	got, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), podSpec(ns, name, ann), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return got
}

// podSpec is an app pod with a named port and HTTP probes.
func podSpec(ns, name string, ann map[string]string) *corev1.Pod {
	sa := "web"
	if ns != "shop" {
		sa = "default"
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web"}, Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers: []corev1.Container{{
				Name: "web", Image: "registry.example/web:1",
				Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}},
			}},
		},
	}
}

// unchanged checks that a stored pod is as created: one container, no
// init container, no token volume, original probes.
func unchanged(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if len(p.Spec.Containers) != 1 || len(p.Spec.InitContainers) != 0 {
		t.Fatalf("pod %s changed: containers %d, init containers %d", p.Name, len(p.Spec.Containers), len(p.Spec.InitContainers))
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == "istio-token" || v.Name == "istiod-ca-cert" {
			t.Errorf("pod %s has volume %s", p.Name, v.Name)
		}
	}
	if h := p.Spec.Containers[0].LivenessProbe.HTTPGet; h.Path != "/healthz" || h.Port.StrVal != "http" {
		t.Errorf("pod %s probe changed: %+v", p.Name, h)
	}
	if _, ok := p.Annotations[inject.AnnotationStatus]; ok {
		t.Errorf("pod %s has %s", p.Name, inject.AnnotationStatus)
	}
}

// badPolicy has a path that Istio's validation refuses.
const badPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: orders-read
  namespace: shop
spec:
  selector:
    matchLabels:
      app: orders
  rules:
  - to:
    - operation:
        methods: ["GET"]
        paths: ["/api/*/orders"]
`

// badPolicyMessage is `palisade analyze bad.yaml`'s line without
// "bad.yaml:14: ".
const badPolicyMessage = `Error [PAL0001] (AuthorizationPolicy shop/orders-read) AuthorizationPolicy shop/orders-read: spec.rules[0].to[0].operation.paths[0]: invalid path "/api/*/orders": '*' is allowed only at the start or the end`
