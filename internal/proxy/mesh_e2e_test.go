package proxy_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"palisade.dev/palisade/internal/proxy"
)

const strictMesh = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`

func TestMTLSBetweenSidecars(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh)
	m.reload()
	catalog := m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: app(t)}}, false)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	c := proxyClient(front)

	var body string
	eventually(t, "frontend reaches productcatalog", func() error {
		code, b := get(t, c, "http://productcatalog:5000/products/?q=1")
		if code != 200 {
			return errors.New(b)
		}
		body = b
		return nil
	})
	for _, want := range []string{"path=/products/?q=1", "By=" + catalogID, "URI=" + frontendID, "Hash="} {
		if !strings.Contains(body, want) {
			t.Errorf("app saw %q, want %q in it", body, want)
		}
	}
	inbound := catalog.Options().Inbound[0].Listen
	if err := plainGet(inbound); err == nil {
		t.Fatal("plaintext request passed under STRICT")
	}

	// PERMISSIVE lets plaintext in, pushed without a restart.
	m.write("pa.yaml", strings.Replace(strictMesh, "STRICT", "PERMISSIVE", 1))
	m.reload()
	eventually(t, "plaintext under PERMISSIVE", func() error { return plainGet(inbound) })

	// Port-level DISABLE on a workload policy, over a namespace STRICT.
	m.write("pa.yaml", strictMesh+`---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ns, namespace: workshop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: catalog, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  portLevelMtls: {5000: {mode: DISABLE}}
`)
	m.reload()
	eventually(t, "plaintext on a DISABLE port", func() error { return plainGet(inbound) })
	// Auto mTLS follows the server port's mode: the caller now sends
	// plaintext, so the request still works, without a client certificate.
	eventually(t, "mesh call to a DISABLE port", func() error {
		code, b := get(t, c, "http://productcatalog:5000/d")
		if code != 200 || !strings.Contains(b, "path=/d") {
			return fmt.Errorf("%d %s", code, b)
		}
		if strings.Contains(b, "URI=") {
			return fmt.Errorf("XFCC on a plaintext hop: %s", b)
		}
		return nil
	})
}

func TestStrictRefusesPlaintextWhileMeshWorks(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: workshop}
spec: {mtls: {mode: STRICT}}
`)
	m.reload()
	catalog := m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: app(t)}}, false)
	// The namespace's STRICT wins over the mesh's PERMISSIVE.
	if err := plainGet(catalog.Options().Inbound[0].Listen); err == nil {
		t.Fatal("namespace STRICT did not override mesh PERMISSIVE")
	}
}

func TestSecureNamingRefusesWrongServiceAccount(t *testing.T) {
	m := newTestMesh(t)
	logs := &syncLog{}
	m.log = slog.New(slog.NewTextHandler(logs, nil))
	// The catalog sidecar serves with a valid mesh certificate, but of
	// another service account than productcatalog runs as.
	impostor := m.ca.issue(t, "spiffe://cluster.local/ns/workshop/sa/frontend-sa")
	var reached atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	m.sidecarServing("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID), impostor,
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: ln.Addr().String()}}, false)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	// Until the catalog's endpoint reaches the frontend, requests fail for
	// want of an upstream; once it has, they must fail on the server's
	// identity, the handshake done and the app never reached.
	eventually(t, "frontend refuses the impostor on its identity", func() error {
		code, body := get(t, proxyClient(front), "http://productcatalog:5000/")
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("request to an impostor = %d %q, want 503", code, body)
		}
		if !strings.Contains(logs.String(), "secure naming: server spiffe://cluster.local/ns/workshop/sa/frontend-sa is not an identity of") {
			return errors.New("not refused on secure naming yet")
		}
		return nil
	})
	if n := reached.Load(); n != 0 {
		t.Fatalf("the impostor's app was reached %d times", n)
	}
}

func TestAuthorizationPolicyDenies(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-products, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}
  action: AUDIT
  rules: [{to: [{operation: {paths: ["/products*"]}}]}]
`)
	m.reload()
	m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: app(t)}}, false)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	c := proxyClient(front)
	eventually(t, "allowed path", func() error {
		if code, b := get(t, c, "http://productcatalog:5000/products"); code != 200 {
			return errors.New(b)
		}
		return nil
	})
	for _, p := range []string{"/admin", "/admin/x", "//admin", "/./admin", "/x/../admin", "/%61dmin"} {
		code, body := get(t, c, "http://productcatalog:5000"+p)
		if code != http.StatusForbidden || body != "RBAC: access denied" {
			t.Errorf("GET %s = %d %q, want 403 RBAC: access denied", p, code, body)
		}
	}
	// Each decision is in the access log with the policy and rule that
	// made it; AUDIT marks an entry without deciding.
	log := m.logs["productcatalog"].String()
	for _, want := range []string{
		`"path":"/admin/x","protocol":"HTTP/2.0","response_code":403`,
		`"authz_decision":"DENY","authz_policy":"DENY workshop/deny-admin rule 0"`,
		`"path":"/products","protocol":"HTTP/2.0","response_code":200`,
		`"authz_decision":"ALLOW+AUDIT","authz_policy":"AUDIT workshop/audit-products rule 0"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s:\n%s", want, log)
		}
	}
}
