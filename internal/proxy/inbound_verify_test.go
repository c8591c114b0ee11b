package proxy_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/proxy"
)

// The inbound side verifies the caller's chain against the mesh bundle:
// a SPIFFE certificate of another CA is refused in the handshake, a mesh
// one is served and named in XFCC.
func TestInboundVerifiesClientChain(t *testing.T) {
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh)
	m.reload()
	catalog := m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: app(t)}}, false)
	addr := catalog.Options().Inbound[0].Listen
	tests := []struct {
		name    string
		cert    *tls.Certificate
		wantErr bool
	}{
		{name: "mesh certificate", cert: m.ca.issue(t, frontendID)},
		{name: "same SPIFFE ID from another CA", cert: newTestCA(t).issue(t, frontendID), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				Certificates: []tls.Certificate{*tt.cert}, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"},
			}}}
			resp, err := c.Get("https://" + addr + "/v")
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request with %s answered %d, want the handshake refused", tt.name, resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), "URI="+frontendID) {
				t.Fatalf("answer %d %q, want 200 and the caller in XFCC", resp.StatusCode, b)
			}
		})
	}
}
