package kube_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/kubeapi"
)

// The workshop on a real API server: its YAML applied with kubectl, three
// pods with tokens bound to their Pod objects, STRICT mTLS between them,
// live edits through kubectl, token refusals, a control-plane restart
// under traffic and the root bundle in every namespace.
func TestWorkshopOnKubernetes(t *testing.T) {
	ips := podNetwork(t, len(apps)+1)
	c := kubeapi.Start(t)
	b := meshtest.Build(t)
	setupCluster(t, c, b.Root)

	cp := &controlPlane{t: t, bins: b, kubeconfig: controlPlaneKubeconfig(t, c), state: t.TempDir(), grpc: freeAddr(t), admin: freeAddr(t)}
	cp.start()

	// The root bundle, as a pod mounts it: the ConfigMap in its namespace.
	bundle := rootCert(t, c, ns, "")
	bundleFile := filepath.Join(t.TempDir(), "root-cert.pem")
	if err := os.WriteFile(bundleFile, []byte(bundle), 0o600); err != nil {
		t.Fatal(err)
	}

	pods := map[string]*pod{}
	for i, a := range apps {
		name := createPod(t, c, a, ips[i])
		pods[a.name] = startPod(t, c, b, cp, a, name, ips[i], bundleFile)
	}
	for _, a := range apps {
		p := pods[a.name]
		meshtest.Eventually(t, 30*time.Second, a.name+" sidecar ready", func() error { return ready(p.admin) })
		id, err := p.spiffeID()
		if err != nil {
			t.Fatal(err)
		}
		if want := "spiffe://cluster.local/ns/workshop/sa/" + a.sa; id != want {
			t.Errorf("%s: certificate for %s, want %s", a.name, id, want)
		}
		t.Logf("%s: %s", p.podName, id)
	}
	front := pods["frontend"].client()
	meshtest.Eventually(t, 20*time.Second, "frontend → productcatalog → catalogdetail", func() error {
		return getOK(front, "http://frontend:9000/", "ABC.com")
	})
	for _, a := range apps {
		refused, err := plaintextRefused(pods[a.name].inbound)
		if err != nil || !refused {
			t.Errorf("%s under STRICT: plaintext refused %v, %v; want reset", a.name, refused, err)
		}
	}

	t.Run("CLI against the cluster", func(t *testing.T) {
		out, err := runPalisade(b, "describe", "pod", "catalogdetail-0.workshop", "--kubeconfig", c.Kubeconfig)
		if err != nil {
			t.Fatalf("describe pod: %v: %s", err, out)
		}
		t.Logf("palisade describe pod catalogdetail-0.workshop --kubeconfig:\n%s", out)
		for _, want := range []string{"Workload:  workshop/catalogdetail-0", "spiffe://cluster.local/ns/workshop/sa/catalogdetail-sa",
			"Service:   catalogdetail.workshop.svc.cluster.local", "port 3000/http: STRICT, set by istio-system/default", "workshop/catalogdetail"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe pod lacks %q:\n%s", want, out)
			}
		}
		// The workshop's gateway VirtualService routes to frontend.
		out, err = runPalisade(b, "describe", "pod", "frontend-0.workshop", "--kubeconfig", c.Kubeconfig)
		if err != nil || !strings.Contains(out, "workshop/productapp (hosts *; gateways productapp-gateway)") {
			t.Errorf("describe pod frontend-0.workshop lacks the productapp VirtualService: %v:\n%s", err, out)
		}
		out, err = runPalisade(b, "authz", "check", "--kubeconfig", c.Kubeconfig, "--to", "catalogdetail-0.workshop", "--from", "workshop/sa/productcatalog-sa", "--path", "/catalogDetail")
		if err != nil || !strings.Contains(out, "ALLOW") {
			t.Errorf("authz check --to POD.NAMESPACE: %v:\n%s", err, out)
		}
		out, err = runPalisade(b, "proxy-config", "secret", "frontend-0.workshop", "--admin", cp.admin)
		if err != nil || !strings.Contains(out, "spiffe://cluster.local/ns/workshop/sa/frontend-sa") {
			t.Errorf("proxy-config secret POD.NAMESPACE: %v:\n%s", err, out)
		}
		t.Logf("palisade proxy-config secret frontend-0.workshop:\n%s", out)
		// Through the API server's pod proxy to the sidecar's status
		// port, as istioctl reaches a pod: no control plane address needed.
		out, err = runPalisade(b, "proxy-config", "secret", "frontend-0.workshop", "--kubeconfig", c.Kubeconfig)
		for _, want := range []string{"spiffe://cluster.local/ns/workshop/sa/frontend-sa", "Trust bundle:"} {
			if err != nil || !strings.Contains(out, want) {
				t.Errorf("proxy-config secret --kubeconfig lacks %q: %v:\n%s", want, err, out)
			}
		}
		t.Logf("palisade proxy-config secret frontend-0.workshop --kubeconfig:\n%s", out)
		out, err = runPalisade(b, "proxy-config", "secret", "frontend-0.workshop", "--kubeconfig", c.Kubeconfig, "-o", "pem")
		if err != nil || strings.Contains(out, "PRIVATE KEY") || !strings.Contains(out, "BEGIN CERTIFICATE") {
			t.Errorf("proxy-config secret --kubeconfig -o pem: %v (want certificates, never a key):\n%s", err, out)
		}
		out, err = runPalisade(b, "proxy-config", "secret", "nosuch-0.workshop", "--kubeconfig", c.Kubeconfig)
		if err == nil || !strings.Contains(out, "pod workshop/nosuch-0 not found") {
			t.Errorf("proxy-config secret of a missing pod: %v:\n%s", err, out)
		}
	})

	t.Run("PeerAuthentication edit", func(t *testing.T) {
		load := startLoad(front)
		for _, step := range []struct{ from, to string }{{"STRICT", "PERMISSIVE"}, {"PERMISSIVE", "STRICT"}} {
			worst := untilAll(t, pods, func() {
				edit(t, c, "peerauthentication/default", "-n", "istio-system", "s/mode: "+step.from+"/mode: "+step.to+"/")
			}, func(p *pod) (bool, error) {
				refused, err := plaintextRefused(p.inbound)
				return refused == (step.to == "STRICT"), err
			})
			t.Logf("kubectl edit %s → %s reached every sidecar within %v", step.from, step.to, worst.Round(time.Millisecond))
			if worst > time.Second {
				t.Errorf("%s → %s took %v to reach every sidecar; want within 1s", step.from, step.to, worst)
			}
		}
		load.stopAndCheck(t)
	})

	t.Run("AuthorizationPolicy edit", func(t *testing.T) {
		load := startLoad(front)
		// Only productcatalog may call catalogdetail: frontend's direct
		// call is denied while the chain through productcatalog goes on.
		applyYAML(t, c, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: catalogdetail
  namespace: workshop
spec:
  selector:
    matchLabels:
      app: catalogdetail
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/workshop/sa/productcatalog-sa", "cluster.local/ns/workshop/sa/frontend-sa"]
`)
		meshtest.Eventually(t, 10*time.Second, "frontend may call catalogdetail", func() error {
			return getOK(front, "http://catalogdetail:3000/catalogDetail", "")
		})
		startEdit := time.Now()
		edit(t, c, "authorizationpolicy/catalogdetail", "-n", ns, `/^ *- cluster.local\/ns\/workshop\/sa\/frontend-sa$/d`)
		var took time.Duration
		for {
			resp, err := front.Get("http://catalogdetail:3000/catalogDetail")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 403 && strings.Contains(string(body), "RBAC: access denied") {
					took = time.Since(startEdit)
					break
				}
			}
			if time.Since(startEdit) > 15*time.Second {
				t.Fatalf("frontend still reaches catalogdetail 15s after the edit")
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("kubectl edit of the AuthorizationPolicy enforced within %v", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("AuthorizationPolicy edit took %v; want within 1s", took)
		}
		load.stopAndCheck(t)
		kubectl(t, c, "delete", "authorizationpolicy", "catalogdetail", "-n", ns)
	})

	t.Run("invalid object keeps the last good one", func(t *testing.T) {
		// DENY without rules passes the CRD schema but not Istio's
		// validation: the object is reported and does not apply.
		applyYAML(t, c, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: broken
  namespace: workshop
spec:
  action: DENY
`)
		meshtest.Eventually(t, 10*time.Second, "Event on the invalid policy", func() error {
			out, err := c.Kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=broken", "-o", "jsonpath={.items[*].message}")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "workshop/AuthorizationPolicy/broken") || !strings.Contains(out, "DENY action without `rules`") {
				return fmt.Errorf("events: %q", out)
			}
			return nil
		})
		if err := getOK(front, "http://frontend:9000/", "ABC.com"); err != nil {
			t.Errorf("traffic after an invalid policy: %v", err)
		}
		if !strings.Contains(cp.output(), "invalid object, keeping its last good version") {
			t.Errorf("control plane did not log the invalid object")
		}
		// analyze reads the cluster and reports it as it would the file.
		out, err := runPalisade(b, "analyze", "--kubeconfig", c.Kubeconfig)
		if err == nil || !strings.Contains(out, "workshop/AuthorizationPolicy/broken:") || !strings.Contains(out, "DENY action without `rules`") {
			t.Errorf("palisade analyze --kubeconfig: %v:\n%s", err, out)
		}
		t.Logf("palisade analyze --kubeconfig:\n%s", out)
		kubectl(t, c, "delete", "authorizationpolicy", "broken", "-n", ns)
	})

	t.Run("token refusals", func(t *testing.T) {
		good := c.PodToken(t, ns, "productcatalog-0", []string{"istio-ca"}, time.Hour)
		if err := askCertificate(cp.grpc, bundle, "productcatalog-sa", good); err != nil {
			t.Fatalf("the pod's own token: %v", err)
		}
		wrongAud := c.PodToken(t, ns, "productcatalog-0", []string{"api"}, time.Hour)
		expired, err := expiredToken(c, "productcatalog-0")
		if err != nil {
			t.Fatal(err)
		}
		// A pod that is deleted after its token was made.
		gone := createPod(t, c, app{"ghost", "catalogdetail-sa", 7000}, ips[len(apps)])
		goneTok := c.PodToken(t, ns, gone, []string{"istio-ca"}, time.Hour)
		if err := c.Client.CoreV1().Pods(ns).Delete(context.Background(), gone, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, sa, token, logged string }{
			{"another service account's token", "frontend-sa", good, "the CSR asks for another identity"},
			{"wrong audience", "productcatalog-sa", wrongAud, "service account token refused"},
			{"expired", "productcatalog-sa", expired, "service account token refused"},
			{"deleted pod", "catalogdetail-sa", goneTok, "service account token refused"},
		} {
			before := len(cp.output())
			err := askCertificate(cp.grpc, bundle, tc.sa, tc.token)
			if err == nil {
				t.Errorf("%s: got a certificate", tc.name)
				continue
			}
			var logged string
			meshtest.Eventually(t, 5*time.Second, tc.name+" logged", func() error {
				logged = cp.output()[before:]
				if !strings.Contains(logged, tc.logged) {
					return fmt.Errorf("log: %s", logged)
				}
				return nil
			})
			t.Logf("%s: refused (%v); log: %s", tc.name, err, firstLine(logged, tc.logged))
		}
	})

	t.Run("control plane restart under traffic", func(t *testing.T) {
		load := startLoad(front)
		time.Sleep(200 * time.Millisecond)
		cp.p.stop()
		time.Sleep(time.Second)
		cp.start()
		meshtest.Eventually(t, 20*time.Second, "three proxies reconnected", func() error {
			var ps []struct {
				ID        string `json:"id"`
				Connected bool   `json:"connected"`
			}
			if err := getJSON("http://"+cp.admin+"/api/proxies", &ps); err != nil {
				return err
			}
			n := 0
			for _, p := range ps {
				if p.Connected {
					n++
				}
			}
			if n != 3 {
				return fmt.Errorf("%d connected: %+v", n, ps)
			}
			return nil
		})
		// Resynced: a policy made after the restart applies.
		edit(t, c, "peerauthentication/default", "-n", "istio-system", "s/mode: STRICT/mode: PERMISSIVE/")
		meshtest.Eventually(t, 10*time.Second, "PERMISSIVE after the restart", func() error {
			for _, p := range pods {
				if refused, err := plaintextRefused(p.inbound); refused || err != nil {
					return fmt.Errorf("%s: refused %v %v", p.name, refused, err)
				}
			}
			return nil
		})
		edit(t, c, "peerauthentication/default", "-n", "istio-system", "s/mode: PERMISSIVE/mode: STRICT/")
		load.stopAndCheck(t)
	})

	t.Run("istio-ca-root-cert", func(t *testing.T) {
		for _, n := range []string{ns, "istio-system", "istio-ingress", "default", "kube-system"} {
			if got := rootCert(t, c, n, ""); got != bundle {
				t.Errorf("%s: root cert differs from the bundle", n)
			}
		}
		c.Namespace(t, "created-later", nil)
		rootCert(t, c, "created-later", bundle)
		out, err := runPalisade(b, "ca", "rotate-root", "--state", filepath.Join(cp.state, "ca"))
		if err != nil {
			t.Fatalf("rotate-root: %v: %s", err, out)
		}
		rotated := waitRootChange(t, c, ns, bundle)
		if strings.Count(rotated, "BEGIN CERTIFICATE") != 2 {
			t.Errorf("after rotate-root the bundle holds %d roots, want 2", strings.Count(rotated, "BEGIN CERTIFICATE"))
		}
		for _, n := range []string{"created-later", "istio-system"} {
			rootCert(t, c, n, rotated)
		}
	})
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// rootCert waits for istio-ca-root-cert in namespace n and returns it;
// with want set, it waits until it equals want.
func rootCert(t *testing.T, c *kubeapi.Cluster, n, want string) string {
	t.Helper()
	var got string
	meshtest.Eventually(t, 15*time.Second, "istio-ca-root-cert in "+n, func() error {
		cm, err := c.Client.CoreV1().ConfigMaps(n).Get(context.Background(), "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		got = cm.Data["root-cert.pem"]
		if got == "" || (want != "" && got != want) {
			return errors.New("not current")
		}
		return nil
	})
	return got
}

func waitRootChange(t *testing.T, c *kubeapi.Cluster, n, old string) string {
	t.Helper()
	var got string
	meshtest.Eventually(t, 15*time.Second, "istio-ca-root-cert changes in "+n, func() error {
		cm, err := c.Client.CoreV1().ConfigMaps(n).Get(context.Background(), "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got = cm.Data["root-cert.pem"]; got == old {
			return errors.New("unchanged")
		}
		return nil
	})
	return got
}

// untilAll runs change, then polls every pod until check holds, and
// returns the slowest pod's time.
func untilAll(t *testing.T, pods map[string]*pod, change func(), check func(*pod) (bool, error)) time.Duration {
	t.Helper()
	start := time.Now()
	change()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 15*time.Second {
				ok, err := check(p)
				if err == nil && ok {
					mu.Lock()
					worst = max(worst, time.Since(start))
					mu.Unlock()
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Errorf("%s: not applied 15s after the change", p.name)
		}()
	}
	wg.Wait()
	return worst
}

// plaintextRefused dials the sidecar in plaintext and reports whether the
// connection was reset instead of served.
func plaintextRefused(addr string) (bool, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE), nil
	}
	b := make([]byte, 12)
	n, err := io.ReadFull(c, b)
	if strings.HasPrefix(string(b[:n]), "HTTP/1.1 ") {
		return false, nil // served (a policy may still deny it)
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return true, nil
	}
	return false, fmt.Errorf("neither served nor reset: %q %v", b[:n], err)
}
