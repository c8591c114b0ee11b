package certmanager

import (
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// certTTL is the workload certificate lifetime: the workshop's one hour,
// scaled down so that the test sees each proxy rotate more than once.
const certTTL = 2 * time.Minute

// The workshop's istio-csr path end to end, on a real API server with
// cert-manager's own controllers: SVIDs chain leaf → istio-ca → root, each
// one a CertificateRequest that cert-manager approved and signed; a denied
// request leaves its proxy without a certificate and with the reason; the
// issuer going down delays renewal without failing a request; short-lived
// certificates turn over under load with no failed request.
func TestCertManagerSignsTheMesh(t *testing.T) {
	e := setup(t, certTTL)
	web := e.startWorkload(t, "web", "web-sa", certTTL, true)
	client := e.startWorkload(t, "client", "client-sa", certTTL, true)

	t.Run("chain", func(t *testing.T) {
		chain := web.chain(t)
		if len(chain) != 3 {
			t.Fatalf("chain has %d certificates, want leaf, istio-ca, root", len(chain))
		}
		leaf := writePEM(t, filepath.Join(e.dir, "leaf.pem"), chain[0])
		inter := writePEM(t, filepath.Join(e.dir, "istio-ca.pem"), chain[1])
		out, err := exec.Command("openssl", "verify", "-CAfile", e.rootFile, "-untrusted", inter, leaf).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Fatalf("openssl verify leaf → istio-ca → root: %v\n%s", err, out)
		}
		text, err := exec.Command("openssl", "x509", "-in", leaf, "-noout", "-text").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Issuer: O = cert-manager, CN = istio-ca", "URI:spiffe://cluster.local/ns/e2e/sa/web-sa",
			"CA:FALSE", "TLS Web Server Authentication", "TLS Web Client Authentication"} {
			if !strings.Contains(string(text), want) {
				t.Errorf("openssl x509 -text of the workload certificate lacks %q:\n%s", want, text)
			}
		}
		if got := chain[0].NotAfter.Sub(chain[0].NotBefore); got > certTTL+time.Minute {
			t.Errorf("workload certificate lives %s, asked for %s", got, certTTL)
		}
		itext, _ := exec.Command("openssl", "x509", "-in", inter, "-noout", "-text").CombinedOutput()
		if !strings.Contains(string(itext), "Issuer: O = Example Corp, CN = Example Corp Root CA") || !strings.Contains(string(itext), "CA:TRUE") {
			t.Errorf("istio-ca is not a CA issued by the root:\n%s", itext)
		}

		out, err = exec.Command(e.b.Palisade, "proxy-config", "secret", "e2e/web", "--admin", e.admin).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "CN=istio-ca,O=cert-manager") {
			t.Errorf("palisade proxy-config secret does not show the issuer: %v\n%s", err, out)
		}
		out, err = exec.Command(e.b.Palisade, "ca", "show", "--admin", e.admin).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "cert-manager Issuer.cert-manager.io/istio-ca in namespace istio-system") {
			t.Errorf("palisade ca show does not say which issuer signs: %v\n%s", err, out)
		}
	})

	t.Run("certificaterequests", func(t *testing.T) {
		out := kubectl(t, e.cluster.Kubectl, "-n", "istio-system", "get", "certificaterequests",
			"-o", `custom-columns=NAME:.metadata.name,APPROVED:.status.conditions[?(@.type=="Approved")].status,READY:.status.conditions[?(@.type=="Ready")].status,ID:.metadata.annotations.istio\.cert-manager\.io/identities`)
		for _, id := range []string{"ns/e2e/sa/web-sa", "ns/e2e/sa/client-sa", "ns/istio-system/sa/palisade-control-plane"} {
			found := false
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) == 4 && strings.HasSuffix(f[3], id) {
					found = true
					if f[1] != "True" || f[2] != "True" {
						t.Errorf("CertificateRequest %s for %s: Approved=%s Ready=%s", f[0], id, f[1], f[2])
					}
					if !strings.Contains(e.cp.output(), f[0]) {
						t.Errorf("the control plane's log does not name CertificateRequest %s", f[0])
					}
				}
			}
			if !found {
				t.Errorf("no CertificateRequest for %s:\n%s", id, out)
			}
		}
		t.Logf("kubectl get certificaterequests:\n%s", kubectl(t, e.cluster.Kubectl, "-n", "istio-system", "get", "certificaterequests"))
	})

	t.Run("denied", func(t *testing.T) {
		d := e.startWorkload(t, "denied", "denied", certTTL, false)
		meshtest.Eventually(t, 30*time.Second, "the denied proxy reports the refusal", func() error {
			if !strings.Contains(d.sidecar.output(), "Denied") {
				return fmt.Errorf("no Denied in its log yet")
			}
			return nil
		})
		t.Logf("denied sidecar log: %s", lineWith(d.sidecar.output(), "Denied"))
		if !strings.Contains(d.sidecar.output(), "refused by policy") {
			t.Errorf("the proxy is not told why:\n%s", d.sidecar.tail())
		}
		resp, err := http.Get("http://" + d.admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Errorf("a proxy whose request was denied is ready")
			}
		}
		out := kubectl(t, e.cluster.Kubectl, "-n", "istio-system", "get", "certificaterequests",
			"-o", `custom-columns=NAME:.metadata.name,DENIED:.status.conditions[?(@.type=="Denied")].status,ID:.metadata.annotations.istio\.cert-manager\.io/identities`)
		if l := lineWithField(out, 1, "True"); !strings.HasSuffix(l, "ns/e2e/sa/denied") {
			t.Errorf("no Denied CertificateRequest for the denied service account in:\n%s", out)
		}
		d.sidecar.stop()
	})

	// Load from client to web through both sidecars (mTLS) for the rest
	// of the test.
	pu, _ := url.Parse("http://" + client.proxy)
	mesh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	load := meshtest.StartLoad(t, mesh, 20*time.Millisecond, func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, "http://web:8080/ping", nil)
	}, nil)
	firstWeb, firstClient := web.chain(t)[0], client.chain(t)[0]

	parent := t
	t.Run("issuer down", func(t *testing.T) {
		// Down from shortly before the proxies renew until after: the
		// renewals wait, the current certificates keep serving.
		renew := firstWeb.NotBefore.Add(certTTL / 2)
		if d := time.Until(renew.Add(-10 * time.Second)); d > 0 {
			time.Sleep(d)
		}
		e.cm.stop()
		down := time.Now()
		meshtest.Eventually(t, 40*time.Second, "the control plane reports the issuer is not signing", func() error {
			if !strings.Contains(e.cp.output(), "not issued within") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		time.Sleep(time.Until(down.Add(35 * time.Second)))
		if got := web.chain(t)[0]; !got.Equal(firstWeb) {
			t.Errorf("web got a new certificate while the issuer was down")
		}
		if r := load.Snapshot(); len(r.Failures) > 0 {
			t.Errorf("%d of %d requests failed while the issuer was down: %v", len(r.Failures), r.Sent, r.Failures)
		}
		e.startCertManager(parent)
	})

	t.Run("rotation under load", func(t *testing.T) {
		// Each proxy renews at about half its lifetime: wait for two
		// turnovers of each after the first certificate.
		seen := map[string]map[string]bool{"web": {}, "client": {}}
		seen["web"][firstWeb.SerialNumber.String()] = true
		seen["client"][firstClient.SerialNumber.String()] = true
		meshtest.Eventually(t, 3*certTTL, "each proxy on its third certificate", func() error {
			for _, w := range []*workload{web, client} {
				seen[w.name][w.chain(t)[0].SerialNumber.String()] = true
				if len(seen[w.name]) < 3 {
					return fmt.Errorf("%s has had %d certificates", w.name, len(seen[w.name]))
				}
			}
			return nil
		})
		r := load.Stop()
		if len(r.Failures) > 0 {
			t.Errorf("%d of %d requests failed across rotations: %v", len(r.Failures), r.Sent, r.Failures)
		}
		if r.Sent < 1000 {
			t.Errorf("only %d requests sent", r.Sent)
		}
		t.Logf("%d requests, %d ok, across %d certificates per proxy", r.Sent, r.OK, len(seen["web"]))
	})
}

// lineWith is the first line of s holding sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// lineWithField is the first line whose field i (0-based) is v.
func lineWithField(s string, i int, v string) string {
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > i && f[i] == v {
			return l
		}
	}
	return ""
}
