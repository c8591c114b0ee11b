package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/internal/inject"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/kubeapi"
)

const ns = "workshop"

// app is one workshop service: its pod, service account and port.
type app struct {
	name, sa string
	port     int
}

var apps = []app{
	{"frontend", "frontend-sa", 9000},
	{"productcatalog", "productcatalog-sa", 5000},
	{"catalogdetail", "catalogdetail-sa", 3000},
}

// proc is a started process with its output kept.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }() //nolint:errcheck
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill() //nolint:errcheck
		<-p.done
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// controlPlane is `palisade control-plane --kubeconfig`, restartable on
// the same addresses and state.
type controlPlane struct {
	t                 *testing.T
	bins              *meshtest.Bins
	kubeconfig, state string
	grpc, admin       string
	p                 *proc
	outs              []*syncBuffer
}

func (cp *controlPlane) start() {
	cp.t.Helper()
	cp.p = start(cp.t, "control plane", nil, cp.bins.Palisade, "control-plane", "--kubeconfig", cp.kubeconfig,
		"--state", cp.state, "--listen", cp.grpc, "--admin", cp.admin)
	cp.outs = append(cp.outs, cp.p.out)
	meshtest.Eventually(cp.t, 30*time.Second, "control plane healthy", func() error {
		resp, err := http.Get("http://" + cp.admin + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// output is every run's log.
func (cp *controlPlane) output() string {
	var b strings.Builder
	for _, o := range cp.outs {
		b.WriteString(o.String())
	}
	return b.String()
}

// setupCluster installs Istio's CRDs and applies the workshop's YAML
// unchanged, as a user would with kubectl.
func setupCluster(t *testing.T, c *kubeapi.Cluster, root string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("go list istio.io/api: %v", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	kubectl(t, c, "apply", "--server-side", "-f", crds)
	kubectl(t, c, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
	ex := filepath.Join(root, "examples", "workshop")
	kubectl(t, c, "apply", "-f", filepath.Join(ex, "namespace.yaml"))
	for _, n := range []string{ns, "istio-system", "istio-ingress"} {
		c.ServiceAccount(t, n, "default") // no controller-manager makes it
	}
	kubectl(t, c, "apply", "-f", filepath.Join(ex, "serviceaccounts.yaml"))
	kubectl(t, c, "create", "configmap", "istio", "-n", "istio-system", "--from-file=mesh="+filepath.Join(ex, "mesh.yaml"))
	for _, f := range []string{"peerauthentication.yaml", "catalogdetail-destinationrule.yaml", "productapp-gateway.yaml",
		"productapp-virtualservice.yaml", "optional/ingress-authorizationpolicy.yaml"} {
		kubectl(t, c, "apply", "-f", filepath.Join(ex, f))
	}
}

// controlPlaneRBAC is the least the control plane needs, as
// docs/architecture.md lists it.
const controlPlaneRBAC = `apiVersion: v1
kind: ServiceAccount
metadata: {name: palisade-control-plane, namespace: istio-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: palisade-control-plane}
rules:
- apiGroups: [security.istio.io]
  resources: [authorizationpolicies, peerauthentications, requestauthentications]
  verbs: [get, list, watch]
- apiGroups: [networking.istio.io]
  resources: [destinationrules, gateways, serviceentries, virtualservices, workloadentries]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [namespaces, pods, serviceaccounts, services]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, get, list, watch, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: palisade-control-plane}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: palisade-control-plane}
subjects:
- {kind: ServiceAccount, name: palisade-control-plane, namespace: istio-system}
`

// controlPlaneKubeconfig makes the control plane's service account with
// controlPlaneRBAC and a kubeconfig holding a token for it, so the
// control plane runs with the least rights, not as the admin.
func controlPlaneKubeconfig(t *testing.T, c *kubeapi.Cluster) string {
	t.Helper()
	cmd := exec.Command(c.KubectlPath(), "--kubeconfig="+c.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(controlPlaneRBAC)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply RBAC: %v: %s", err, out)
	}
	tok := strings.TrimSpace(kubectl(t, c, "create", "token", "palisade-control-plane", "-n", "istio-system", "--duration=2h"))
	file := filepath.Join(t.TempDir(), "control-plane.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: control-plane
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: control-plane}
current-context: test
`, c.URL, c.CAFile, tok)
	if err := os.WriteFile(file, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func kubectl(t *testing.T, c *kubeapi.Cluster, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pod is one running "pod": its Pod object, app process and sidecar.
type pod struct {
	app
	podName   string
	inbound   string // the sidecar's inbound listener
	httpProxy string // the sidecar's outbound HTTP proxy
	admin     string
	tokenFile string
	sidecar   *proc
}

// createPod makes the Pod, Service and EndpointSlice a Deployment and the
// controller-manager would have made.
func createPod(t *testing.T, c *kubeapi.Cluster, a app, ip string) string {
	t.Helper()
	ctx := context.Background()
	name := a.name + "-0"
	labels := map[string]string{"app": a.name, "version": "v1"}
	_, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{ServiceAccountName: a.sa, Containers: []corev1.Container{
			{Name: a.name, Image: "workshop-app", Ports: []corev1.ContainerPort{{ContainerPort: int32(a.port)}}},
			{Name: inject.ProxyContainer, Image: "palisade-proxy", Ports: []corev1.ContainerPort{{Name: "http-status", ContainerPort: proxy.DefaultStatusPort}}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet reports the pod's IP; the API server's pod proxy dials it.
	p.Status.Phase, p.Status.PodIP, p.Status.PodIPs = corev1.PodRunning, ip, []corev1.PodIP{{IP: ip}}
	if p, err = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": a.name}, Ports: []corev1.ServicePort{{Name: "http", Port: int32(a.port)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port, proto, ready := int32(a.port), corev1.ProtocolTCP, true
	portName := "http"
	_, err = c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: a.name + "-abcde", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: a.name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: name, UID: p.UID}}},
		Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// podNetwork gives each pod an IP of its own, as a pod network would:
// 10.253.0.0/24 addresses on the loopback link, removed at the end. The
// EndpointSlices list these IPs and the sidecars listen on them.
func podNetwork(t *testing.T, n int) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pod IPs on the loopback link need root")
	}
	var ips []string
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("10.253.0.%d", 10+i)
		exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run() //nolint:errcheck // a leftover of a killed run
		if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", ip, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run() }) //nolint:errcheck
		ips = append(ips, ip)
	}
	return ips
}

// startPod runs the app and its sidecar, with a token bound to the Pod
// object in the file the kubelet would project. The sidecar's inbound
// listener is the pod's IP and port, where its EndpointSlice points.
func startPod(t *testing.T, c *kubeapi.Cluster, b *meshtest.Bins, cp *controlPlane, a app, podName, ip, bundle string) *pod {
	t.Helper()
	dir := t.TempDir()
	p := &pod{app: a, podName: podName, inbound: net.JoinHostPort(ip, itoa(a.port)), httpProxy: freeAddr(t), admin: freeAddr(t), tokenFile: filepath.Join(dir, "istio-token")}
	tok := c.PodToken(t, ns, podName, []string{"istio-ca"}, time.Hour)
	if err := os.WriteFile(p.tokenFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	appAddr := freeAddr(t)
	_, appPort, _ := net.SplitHostPort(appAddr)
	start(t, a.name+" app", []string{"PORT=" + appPort, "HTTP_PROXY=http://" + p.httpProxy}, b.Workshop, a.name)
	p.sidecar = start(t, a.name+" sidecar", nil, b.Proxy,
		"--workload", ns+"/"+podName, "--service-account", a.sa, "--service", a.name,
		"--label", "app="+a.name, "--label", "version=v1",
		"--control-plane", cp.grpc, "--bundle", bundle, "--token-file", p.tokenFile,
		"--inbound", fmt.Sprintf("port=%d,name=http,protocol=HTTP,listen=%s,app=%s", a.port, p.inbound, appAddr),
		"--http-proxy", p.httpProxy, "--admin", p.admin, "--access-log", "", "--allow-root",
		"--status", net.JoinHostPort(ip, itoa(proxy.DefaultStatusPort)))
	return p
}

// client sends requests as the pod's app does, through its sidecar.
func (p *pod) client() *http.Client {
	u, _ := url.Parse("http://" + p.httpProxy)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 4}}
}

// spiffeID is the URI SAN of the sidecar's certificate, from its admin.
func (p *pod) spiffeID() (string, error) {
	resp, err := http.Get("http://" + p.admin + "/certs")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("/certs: %s", resp.Status)
	}
	var v struct {
		ChainPEM string `json:"chainPEM"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	return leafURI(v.ChainPEM)
}

func ready(addr string) error {
	resp, err := http.Get("http://" + addr + "/ready")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("/ready: %s", resp.Status)
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }
