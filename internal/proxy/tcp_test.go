package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/proxy"
)

// dualApp answers HTTP requests with what it saw and echoes anything
// else, on one port: a server whose port declares no protocol.
func dualApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		b, err := br.Peek(4)
		if err != nil {
			return
		}
		if string(b) != "GET " {
			_, _ = io.Copy(c, br)
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body := fmt.Sprintf("http path=%s xfcc=%s", req.URL.Path, req.Header.Get("X-Forwarded-Client-Cert"))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	})
	return ln.Addr().String()
}

// viaConnect opens a tunnel to target through a sidecar's HTTP proxy
// listener (as a client honouring HTTPS_PROXY does), sends payload and
// returns what came back before the connection closed.
func viaConnect(t *testing.T, p *proxy.Proxy, target, payload string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Options().HTTP, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("CONNECT: %v %v", resp, err)
	}
	if _, err := io.WriteString(c, payload); err != nil {
		return "", err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	b, err := io.ReadAll(br)
	return string(b), err
}

// Istio's TCP authorization task: a DENY on a TCP port closes the
// connection; an ALLOW rule that needs HTTP-only fields never matches a
// TCP connection, so it allows nothing there.
func TestTCPAuthorization(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh)
	m.reload()
	m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 7000, Name: "tcp-raw", Protocol: proxy.ProtoTCP, Listen: "127.0.0.1:0", App: dualApp(t)}}, false)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	eventually(t, "TCP echo through the mesh", func() error {
		got, err := viaConnect(t, front, "productcatalog:7000", "ping")
		if err != nil || got != "ping" {
			return fmt.Errorf("%q %v", got, err)
		}
		return nil
	})
	for _, c := range []struct {
		name, policy string
	}{
		{"DENY the caller's principal on the port", `
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/workshop/sa/frontend-sa"]}}], to: [{operation: {ports: ["7000"]}}]}]`},
		{"ALLOW on an HTTP-only field (methods) matches no TCP connection", `
  action: ALLOW
  rules: [{to: [{operation: {methods: ["GET"]}}]}]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m.write("ap.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-policy, namespace: workshop}
spec:
  selector: {matchLabels: {app: productcatalog}}`+c.policy+"\n")
			m.reload()
			eventually(t, "connection closed unanswered", func() error {
				got, err := viaConnect(t, front, "productcatalog:7000", "ping")
				if got != "" {
					return fmt.Errorf("echoed %q (%v)", got, err)
				}
				return nil
			})
		})
	}
	m.write("ap.yaml", "")
	m.reload()
	eventually(t, "TCP echo once the policy is gone", func() error {
		if got, err := viaConnect(t, front, "productcatalog:7000", "pong"); got != "pong" {
			return fmt.Errorf("%q %v", got, err)
		}
		return nil
	})
	if log := m.logs["productcatalog"].String(); !strings.Contains(log, `"authz_decision":"DENY","authz_policy":"DENY workshop/tcp-policy rule 0"`) {
		t.Errorf("the denied connection is not in the access log:\n%s", log)
	}
}

// A port that declares no protocol is sniffed, as Istio does: HTTP is
// parsed (the app sees XFCC), anything else passes as opaque TCP.
func TestUnspecifiedProtocolIsSniffed(t *testing.T) {
	m := newTestMesh(t)
	m.write("workloads.yaml", strings.Replace(workloadsYAML,
		"ports: [{name: http, number: 5000, protocol: HTTP}, {name: tcp-raw, number: 7000, protocol: TCP}]",
		"ports: [{name: data, number: 7100}]", 1))
	m.write("pa.yaml", strictMesh)
	m.reload()
	m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 7100, Name: "data", Protocol: proxy.ProtoUnknown, Listen: "127.0.0.1:0", App: dualApp(t)}}, false)
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	c := proxyClient(front)
	eventually(t, "HTTP on the sniffed port", func() error {
		code, body := get(t, c, "http://productcatalog:7100/x")
		if code != 200 || !strings.Contains(body, "http path=/x") || !strings.Contains(body, "URI="+frontendID) {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	got, err := viaConnect(t, front, "productcatalog:7100", "\x00\x01binary")
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("opaque bytes on the sniffed port: %v", err)
	}
	if got != "\x00\x01binary" {
		t.Errorf("opaque bytes on the sniffed port came back as %q", got)
	}
}
