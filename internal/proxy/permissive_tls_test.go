package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/proxy"
)

// PERMISSIVE passes an app's own TLS through untouched, as Istio's
// sidecars do: only a ClientHello that offers the mesh ALPN gets the
// sidecar's mTLS. Under STRICT the same client is refused.
func TestPermissivePassesAppTLSThrough(t *testing.T) {
	pki := newExtPKI(t)
	pair, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	appSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app TLS, xfcc=%q", r.Header.Get("X-Forwarded-Client-Cert"))
	}))
	appSrv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	appSrv.StartTLS()
	t.Cleanup(appSrv.Close)

	m := newTestMesh(t)
	m.write("pa.yaml", strings.Replace(strictMesh, "STRICT", "PERMISSIVE", 1))
	m.reload()
	catalog := m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID), []proxy.InboundPort{
		{Port: 7000, Name: "tcp-raw", Protocol: proxy.ProtoTCP, Listen: "127.0.0.1:0", App: appSrv.Listener.Addr().String()},
		{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: dualApp(t)},
	}, false)
	inbound := catalog.Options().Inbound[0].Listen

	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(pki.ca)
	roots.AppendCertsFromPEM(caPEM)
	outsider := func() (string, error) {
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "api.example.com"},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", inbound)
			},
		}}
		resp, err := c.Get("https://api.example.com/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// The outsider's handshake is with the app itself: its certificate
	// verifies against the app's CA, and no XFCC is added.
	body, err := outsider()
	if err != nil || body != `app TLS, xfcc=""` {
		t.Fatalf("TLS client outside the mesh under PERMISSIVE: %q %v, want the app's own TLS answer", body, err)
	}
	// A mesh peer still gets the sidecar's mTLS: its ClientHello offers
	// the mesh ALPN, and the app sees its identity in XFCC.
	front := m.sidecar("frontend", "frontend-sa", m.ca.issue(t, frontendID), nil, true)
	eventually(t, "mesh peer through mTLS under PERMISSIVE", func() error {
		code, body := get(t, proxyClient(front), "http://productcatalog:5000/x")
		if code != 200 || !strings.Contains(body, "URI="+frontendID) {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})

	m.write("pa.yaml", strictMesh)
	m.reload()
	eventually(t, "the same outsider refused under STRICT", func() error {
		if body, err := outsider(); err == nil {
			return fmt.Errorf("STRICT let the app's TLS through: %q", body)
		}
		return nil
	})
}
