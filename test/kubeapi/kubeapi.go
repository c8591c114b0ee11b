package kubeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"palisade.dev/palisade/test/peers"
)

// The binaries: $PALISADE_KUBE_APISERVER / $PALISADE_KUBECTL, else
// tools/kube/bin (tools/kube/build.sh); $PALISADE_ETCD, else etcd in PATH
// (Debian's etcd-server).
const (
	envAPIServer = "PALISADE_KUBE_APISERVER"
	envKubectl   = "PALISADE_KUBECTL"
	envEtcd      = "PALISADE_ETCD"
)

// ServiceAccountIssuer is the API server's --service-account-issuer, as a
// cluster made by kubeadm has it.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	Dir        string       // its own directory: PKI, kubeconfig, logs, etcd data
	URL        string       // https://127.0.0.1:PORT
	Kubeconfig string       // admin kubeconfig file
	Config     *rest.Config // admin (group system:masters)
	Client     kubernetes.Interface
	Issuer     string // --service-account-issuer
	CAFile     string // the serving certificate's CA, PEM

	kubectl string
	procs   []*exec.Cmd
	logs    []*os.File
	once    sync.Once
}

// Start is Launch for one test, stopped when the test ends. Without the
// binaries the test skips, or fails under CI=true.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if _, err := binaries(); err != nil {
		peers.Missing(t, err.Error())
	}
	c, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

type bins struct{ apiserver, kubectl, etcd string }

func binaries() (bins, error) {
	var b bins
	var err error
	if b.apiserver, err = peers.Find(envAPIServer, "kube", "kube-apiserver"); err != nil {
		return b, err
	}
	if b.kubectl, err = peers.Find(envKubectl, "kube", "kubectl"); err != nil {
		return b, err
	}
	if b.etcd = os.Getenv(envEtcd); b.etcd == "" {
		if b.etcd, err = exec.LookPath("etcd"); err != nil {
			return b, errors.New("etcd not in PATH (scripts/deps.sh installs Debian's etcd-server, or set " + envEtcd + ")")
		}
	}
	return b, nil
}

// Launch starts etcd and kube-apiserver with their files under dir and
// returns once the API server is ready. Stop ends both.
func Launch(dir string) (c *Cluster, err error) {
	b, err := binaries()
	if err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, Issuer: ServiceAccountIssuer, CAFile: filepath.Join(dir, "ca.crt"), kubectl: b.kubectl}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := writePKI(dir); err != nil {
		return nil, err
	}
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+`,admin,admin-uid,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := c.start("etcd", b.etcd,
		"--name=kubeapi",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=kubeapi="+etcdPeer,
		"--listen-metrics-urls=", "--log-level=warn",
	); err != nil {
		return nil, err
	}
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := c.start("kube-apiserver", b.apiserver,
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[2]),
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--tls-cert-file="+filepath.Join(dir, "apiserver.crt"),
		"--tls-private-key-file="+filepath.Join(dir, "apiserver.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer="+c.Issuer,
		"--service-account-key-file="+filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--cert-dir="+filepath.Join(dir, "certs"),
	); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS:             200,
		Burst:           400,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, fmt.Errorf("kubeapi: client: %w", err)
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, []byte(kubeconfig(c.URL, c.CAFile, token)), 0o600); err != nil {
		return nil, err
	}
	if err := c.waitReady(token, 60*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(name, bin string, args ...string) error {
	f, err := os.Create(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		return err
	}
	c.logs = append(c.logs, f)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kubeapi: start %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	return nil
}

// waitReady polls /readyz until it answers ok, a process exits, or the
// time runs out; a failure carries the end of the API server's log.
func (c *Cluster) waitReady(token string, within time.Duration) error {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return err
	}
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, p := range c.procs {
			if p.ProcessState != nil {
				return fmt.Errorf("kubeapi: %s exited: %s", filepath.Base(p.Path), c.logTail())
			}
		}
		req, _ := http.NewRequest(http.MethodGet, c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kubeapi: API server not ready after %s: %s", within, c.logTail())
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "kube-apiserver.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop ends the API server, then etcd.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			p := c.procs[i]
			_ = p.Process.Kill()
			_ = p.Wait()
		}
		for _, f := range c.logs {
			f.Close()
		}
	})
}

// Kubectl runs the pinned kubectl against the cluster, as its admin, and
// returns its combined output.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(c.kubectl, append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HOME="+c.Dir)
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// KubectlPath is the pinned kubectl binary, for tests that drive it
// themselves (kubectl edit with an EDITOR).
func (c *Cluster) KubectlPath() string { return c.kubectl }

// Namespace creates a namespace with its "default" ServiceAccount (no
// controller-manager runs to make it).
func (c *Cluster) Namespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubeapi: create namespace %s: %v", name, err)
	}
	c.ServiceAccount(t, name, "default")
}

// ServiceAccount creates a ServiceAccount, if it is not there yet.
func (c *Cluster) ServiceAccount(t testing.TB, ns, name string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(context.Background(), sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubeapi: create serviceaccount %s/%s: %v", ns, name, err)
	}
}

// PodToken asks the TokenRequest API for a token of the pod's service
// account, bound to the Pod object (which must exist), with the audiences
// and lifetime given (the API server raises a lifetime under 10 minutes
// to 10 minutes).
func (c *Cluster) PodToken(t testing.TB, ns, pod string, audiences []string, ttl time.Duration) string {
	t.Helper()
	tok, err := c.PodTokenErr(ns, pod, audiences, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// PodTokenErr is PodToken returning its error, for use outside a test's
// goroutine.
func (c *Cluster) PodTokenErr(ns, pod string, audiences []string, ttl time.Duration) (string, error) {
	ctx := context.Background()
	p, err := c.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("kubeapi: get pod %s/%s: %w", ns, pod, err)
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	secs := int64(ttl / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         audiences,
		ExpirationSeconds: &secs,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}
	out, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("kubeapi: token for pod %s/%s (sa %s): %w", ns, pod, sa, err)
	}
	return out.Status.Token, nil
}

func kubeconfig(server, caFile, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubeapi
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubeapi
  context:
    cluster: kubeapi
    user: admin
current-context: kubeapi
`, server, caFile, token)
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// freePorts finds n loopback ports nobody listens on now.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubeapi: listen: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
