package mesh_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"palisade.dev/palisade/internal/xfcc"
	"palisade.dev/palisade/test/e2e/meshtest"
)

const (
	clientID = "spiffe://cluster.local/ns/e2e/sa/client-sa"
	webID    = "spiffe://cluster.local/ns/e2e/sa/web-sa"
	grpcID   = "spiffe://cluster.local/ns/e2e/sa/grpc-sa"
	echoID   = "spiffe://cluster.local/ns/e2e/sa/echo-sa"
)

// seen is what meshapp's HTTP handler reports.
type seen struct {
	Proto string `json:"proto"`
	Host  string `json:"host"`
	Path  string `json:"path"`
	XFCC  string `json:"xfcc"`
}

func decodeSeen(t *testing.T, resp *http.Response, err error) seen {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s\n%s", resp.Request.Method, resp.Request.URL, resp.Status, b)
	}
	var s seen
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("not meshapp's answer: %v\n%s", err, b)
	}
	return s
}

// checkXFCC asserts the header the app saw names the caller (URI) and
// the called sidecar (By), as Envoy's APPEND_FORWARD does.
func checkXFCC(t *testing.T, header, caller, callee string) {
	t.Helper()
	els, err := xfcc.Parse(header)
	if err != nil {
		t.Fatalf("X-Forwarded-Client-Cert %q: %v", header, err)
	}
	if len(els) != 1 {
		t.Fatalf("X-Forwarded-Client-Cert %q: want one element, got %d", header, len(els))
	}
	if !reflect.DeepEqual(els[0].URI, []string{caller}) || !reflect.DeepEqual(els[0].By, []string{callee}) || len(els[0].Hash) != 64 {
		t.Errorf("X-Forwarded-Client-Cert %q: want URI=%s By=%s and a SHA-256 hash", header, caller, callee)
	}
}

// Every protocol crosses the mesh with mTLS between sidecars: HTTP/1.1,
// prior-knowledge HTTP/2 (h2c) from the app, gRPC unary and streaming
// with grpc-go on both ends, and raw TCP. The app sees the caller's
// SPIFFE ID in X-Forwarded-Client-Cert, and the access logs and metrics
// show both principals and mutual_tls.
func TestDataPlaneProtocols(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/mesh/meshapp")
	m := meshtest.Up(t, b, meshtest.CopyDir(t, filepath.Join(b.Root, "test", "e2e", "mesh", "testdata", "dataplane")))
	client := m.Client("e2e", "client")
	clientApp := m.Workload("e2e", "client").AppAddress
	proxyAddr := m.Proxy("e2e", "client").HTTPProxy

	t.Run("http1", func(t *testing.T) {
		resp, err := client.Get("http://web:8080/one")
		s := decodeSeen(t, resp, err)
		if s.Proto != "HTTP/1.1" || s.Host != "web:8080" || s.Path != "/one" {
			t.Errorf("app saw %+v", s)
		}
		checkXFCC(t, s.XFCC, clientID, webID)
		e := findAccess(t, m.State, "e2e", "web", "inbound /one in web's access log", func(e accessEntry) bool {
			return e.Direction == "inbound" && str(e.Path) == "/one"
		})
		if !e.MTLS || str(e.SourcePrincipal) != clientID || str(e.DestinationPrincipal) != webID || e.ResponseCode != 200 || str(e.Method) != "GET" {
			t.Errorf("web's access log entry: %+v (source %s, destination %s)", e, str(e.SourcePrincipal), str(e.DestinationPrincipal))
		}
		out := findAccess(t, m.State, "e2e", "client", "outbound /one in client's access log", func(e accessEntry) bool {
			return e.Direction == "outbound" && str(e.Path) == "/one"
		})
		if out.ResponseCode != 200 || str(out.SourcePrincipal) != clientID || str(out.DestinationPrincipal) != webID {
			t.Errorf("client's outbound access log entry: %+v (source %s, destination %s)", out, str(out.SourcePrincipal), str(out.DestinationPrincipal))
		}
	})

	t.Run("curl-through-proxy", func(t *testing.T) {
		needCurl(t)
		// The real curl as an app: absolute-form through the sidecar's
		// HTTP proxy, and a CONNECT tunnel (-p) to the same service.
		for _, args := range [][]string{
			{"-x", "http://" + proxyAddr, "http://web:8080/curl-absolute"},
			{"-p", "-x", "http://" + proxyAddr, "http://web:8080/curl-connect"},
		} {
			out, code := curl(t, args...)
			var s seen
			if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
				t.Fatalf("curl %v: exit %d: %s", args, code, out)
			}
			checkXFCC(t, s.XFCC, clientID, webID)
		}
	})

	t.Run("h2c-prior-knowledge", func(t *testing.T) {
		// The app speaks HTTP/2 without TLS straight to its sidecar's
		// HTTP proxy; :authority names the service.
		protos := new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
		h2 := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			Protocols: protos,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", proxyAddr)
			},
		}}
		resp, err := h2.Get("http://web2:8080/h2")
		if err == nil && resp.Proto != "HTTP/2.0" {
			t.Errorf("sidecar answered the h2c client in %s", resp.Proto)
		}
		s := decodeSeen(t, resp, err)
		// web2's port is HTTP2: its sidecar speaks h2c to the app too.
		if s.Proto != "HTTP/2.0" || s.Host != "web2:8080" || s.Path != "/h2" {
			t.Errorf("app saw %+v", s)
		}
		checkXFCC(t, s.XFCC, clientID, webID)
		e := findAccess(t, m.State, "e2e", "web2", "inbound /h2 in web2's access log", func(e accessEntry) bool {
			return e.Direction == "inbound" && str(e.Path) == "/h2"
		})
		if !e.MTLS || str(e.SourcePrincipal) != clientID || str(e.Protocol) != "HTTP/2.0" {
			t.Errorf("web2's access log entry: %+v (source %s, protocol %s)", e, str(e.SourcePrincipal), str(e.Protocol))
		}
	})

	t.Run("grpc", func(t *testing.T) {
		// meshapp's client calls with grpc-go, which finds the sidecar
		// through the proxy environment palisade up gave it.
		var res struct {
			Unary      string   `json:"unary"`
			UnaryXFCC  string   `json:"unaryXfcc"`
			Streamed   []int    `json:"streamed"`
			Bidi       []string `json:"bidi"`
			ProxyEnvOK bool     `json:"proxyEnvOk"`
			Error      string   `json:"error"`
		}
		getJSON(t, "http://"+clientApp+"/call/grpc?target=grpcsvc:7070", &res)
		if res.Error != "" {
			t.Fatalf("gRPC calls through the mesh: %s", res.Error)
		}
		if !res.ProxyEnvOK {
			t.Error("palisade up gave the app no HTTPS_PROXY: grpc-go would bypass the sidecar")
		}
		if res.Unary != "hello unary" {
			t.Errorf("unary echoed %q", res.Unary)
		}
		checkXFCC(t, res.UnaryXFCC, clientID, grpcID)
		if !reflect.DeepEqual(res.Streamed, []int{10, 200, 3000, 40000}) {
			t.Errorf("server streaming got sizes %v", res.Streamed)
		}
		if !reflect.DeepEqual(res.Bidi, []string{"ping 0", "ping 1", "ping 2", "ping 3", "ping 4"}) {
			t.Errorf("bidi streaming echoed %q", res.Bidi)
		}
		for _, method := range []string{"UnaryCall", "StreamingOutputCall", "FullDuplexCall"} {
			path := "/grpc.testing.TestService/" + method
			e := findAccess(t, m.State, "e2e", "grpcsvc", "inbound "+path, func(e accessEntry) bool {
				return e.Direction == "inbound" && str(e.Path) == path
			})
			if !e.MTLS || str(e.SourcePrincipal) != clientID || str(e.DestinationPrincipal) != grpcID || e.ResponseCode != 200 || str(e.Protocol) != "HTTP/2.0" {
				t.Errorf("grpcsvc's access log entry for %s: %+v (source %s)", method, e, str(e.SourcePrincipal))
			}
		}
		fams := metrics(t, m.Proxy("e2e", "grpcsvc").Admin)
		if n, _ := counterWith(fams, "istio_requests_total", map[string]string{
			"reporter": "destination", "source_principal": clientID, "destination_principal": grpcID,
			"connection_security_policy": "mutual_tls", "request_protocol": "grpc", "grpc_response_status": "0",
		}); n < 3 {
			t.Errorf("grpcsvc's istio_requests_total counts %v gRPC requests from the client with status 0 over mutual_tls, want 3; series:\n%s", n, series(fams, "istio_requests_total"))
		}
	})

	t.Run("tcp", func(t *testing.T) {
		var res struct {
			Sent, Echoed, Error string
		}
		getJSON(t, "http://"+clientApp+"/call/tcp?target=echo:9090", &res)
		if res.Error != "" || res.Sent == "" || res.Echoed != res.Sent {
			t.Fatalf("TCP echo through the mesh: %+v", res)
		}
		e := findAccess(t, m.State, "e2e", "echo", "inbound TCP connection in echo's access log", func(e accessEntry) bool {
			return e.Direction == "inbound" && e.Method == nil
		})
		if !e.MTLS || str(e.SourcePrincipal) != clientID || str(e.DestinationPrincipal) != echoID || e.BytesReceived < int64(len(res.Sent)) {
			t.Errorf("echo's access log entry: %+v (source %s, destination %s)", e, str(e.SourcePrincipal), str(e.DestinationPrincipal))
		}
		meshtest.Eventually(t, 10*time.Second, "echo's TCP metrics", func() error {
			fams := metrics(t, m.Proxy("e2e", "echo").Admin)
			if _, n := counterWith(fams, "istio_tcp_connections_closed_total", map[string]string{
				"reporter": "destination", "source_principal": clientID, "destination_principal": echoID,
				"connection_security_policy": "mutual_tls",
			}); n == 0 {
				return errorf("no istio_tcp_connections_closed_total series from %s over mutual_tls", clientID)
			}
			return nil
		})
	})

	t.Run("metrics", func(t *testing.T) {
		// Both ends count the request with both principals. As in Istio,
		// the server's sidecar reports connection_security_policy
		// mutual_tls and the client's reports unknown.
		// Each side labels its own workload's app, version, canonical
		// service and revision, and cluster, as Istio's stats do.
		for _, side := range []struct{ workload, reporter, policy, own string }{{"web", "destination", "mutual_tls", "destination"}, {"client", "source", "unknown", "source"}} {
			fams := metrics(t, m.Proxy("e2e", side.workload).Admin)
			v, _ := counterWith(fams, "istio_requests_total", map[string]string{
				"reporter": side.reporter, "source_principal": clientID, "destination_principal": webID,
				"connection_security_policy": side.policy, "response_code": "200",
				side.own + "_app": side.workload, side.own + "_version": "v1",
				side.own + "_canonical_service": side.workload, side.own + "_canonical_revision": "v1", side.own + "_cluster": "Kubernetes",
			})
			if v < 1 {
				t.Errorf("%s's istio_requests_total has no reporter=%s series from %s to %s with connection_security_policy=%s and 200; series:\n%s",
					side.workload, side.reporter, clientID, webID, side.policy, series(fams, "istio_requests_total"))
			}
		}
	})

	t.Run("tls-between-sidecars", func(t *testing.T) {
		// What the sidecars present to each other is a mesh certificate:
		// an outsider's TLS handshake without a client certificate fails.
		conn, err := tls.Dial("tcp", m.Workload("e2e", "web").InboundAddress, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			state := conn.ConnectionState()
			_, err = conn.Write([]byte("GET / HTTP/1.1\r\nHost: web\r\n\r\n"))
			if err == nil {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Read(make([]byte, 1))
			}
			conn.Close()
			if len(state.PeerCertificates) == 0 || len(state.PeerCertificates[0].URIs) == 0 || state.PeerCertificates[0].URIs[0].String() != webID {
				t.Errorf("web's sidecar presented %v", state.PeerCertificates)
			}
		}
		if err == nil {
			t.Error("web's sidecar served a TLS client without a certificate")
		}
	})
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %s: %v\n%s", u, resp.Status, err, b)
	}
}
