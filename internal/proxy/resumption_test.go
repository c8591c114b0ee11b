package proxy_test

import (
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/proxy"
)

// rotatingCerts serves a certificate its test replaces, as internal/svid
// does on renewal.
type rotatingCerts struct {
	cur atomic.Pointer[tls.Certificate]
}

func newRotatingCerts(c *tls.Certificate) *rotatingCerts {
	r := &rotatingCerts{}
	r.cur.Store(c)
	return r
}

func (r *rotatingCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

func (r *rotatingCerts) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// handshake is what each side saw of one mTLS connection.
type handshake struct {
	clientResumed, serverResumed bool
	serverSaw                    spiffeid.ID // the client identity the server verified
	err                          error
}

// meshListener accepts mTLS connections with srv's inbound config and
// reports each handshake.
func meshListener(t *testing.T, srv *proxy.Proxy) (string, <-chan handshake) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan handshake, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var id spiffeid.ID
			tc := tls.Server(c, srv.MeshServerTLS(&id))
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			err = tc.Handshake()
			if err == nil {
				_, err = tc.Write([]byte("k"))
			}
			out <- handshake{serverResumed: tc.ConnectionState().DidResume, serverSaw: id, err: err}
			_, _ = io.Copy(io.Discard, tc)
			tc.Close()
		}
	}()
	return ln.Addr().String(), out
}

// dialMesh opens one connection as cli's outbound would to u at addr,
// reads the server's byte (and with it the session ticket) and closes.
func dialMesh(t *testing.T, cli *proxy.Proxy, u *proxy.Upstream, addr string, srv <-chan handshake) handshake {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, cli.MeshClientTLS(u, addr))
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	var h handshake
	if h.err = tc.Handshake(); h.err == nil {
		_, h.err = io.ReadFull(tc, make([]byte, 1))
	}
	h.clientResumed = tc.ConnectionState().DidResume
	tc.Close()
	if h.err != nil {
		c.Close()
		<-srv // the server's side of the failed handshake
		return h
	}
	s := <-srv
	if s.err != nil {
		t.Fatalf("server side: %v", s.err)
	}
	h.serverResumed, h.serverSaw = s.serverResumed, s.serverSaw
	return h
}

func TestMeshSessionResumption(t *testing.T) {
	m := newTestMesh(t)
	clientCerts := newRotatingCerts(m.ca.issue(t, frontendID))
	serverCerts := newRotatingCerts(m.ca.issue(t, catalogID))
	cli := m.sidecarCerts("frontend", "frontend-sa", clientCerts.cur.Load(), clientCerts, proxy.Options{}, nil)
	srv := m.sidecarCerts("productcatalog", "productcatalog-sa", serverCerts.cur.Load(), serverCerts, proxy.Options{}, nil)
	addr, served := meshListener(t, srv)

	catalog := spiffeid.RequireFromString(catalogID)
	other := spiffeid.RequireFromString("spiffe://cluster.local/ns/workshop/sa/other-sa")
	u := &proxy.Upstream{Service: "workshop/productcatalog", Namespace: "workshop", Host: "productcatalog.workshop.svc.cluster.local", Port: 5000, Identities: []spiffeid.ID{catalog}}
	wider := &proxy.Upstream{Service: "workshop/productcatalog", Namespace: "workshop", Host: u.Host, Port: u.Port, Identities: []spiffeid.ID{catalog, other}}
	wrong := &proxy.Upstream{Service: "workshop/productcatalog", Namespace: "workshop", Host: u.Host, Port: u.Port, Identities: []spiffeid.ID{other}}

	step := func(name string, up *proxy.Upstream, wantResumed bool) {
		t.Helper()
		h := dialMesh(t, cli, up, addr, served)
		if h.err != nil {
			t.Fatalf("%s: %v", name, h.err)
		}
		if h.clientResumed != wantResumed || h.serverResumed != wantResumed {
			t.Fatalf("%s: resumed client %v server %v, want %v", name, h.clientResumed, h.serverResumed, wantResumed)
		}
		// The server's identity check ran, resumed or not.
		if h.serverSaw.String() != frontendID {
			t.Fatalf("%s: server verified %q, want %s", name, h.serverSaw, frontendID)
		}
	}

	step("first connection", u, false)
	step("second connection", u, true)
	step("third connection", u, true)

	// Other expected identities: the ticket is not offered.
	step("other secure naming", wider, false)
	step("other secure naming, again", wider, true)

	// An identity that the server does not have fails, ticket or not.
	if h := dialMesh(t, cli, wrong, addr, served); h.err == nil {
		t.Fatal("secure naming: a server outside the expected identities was accepted")
	}

	// Our certificate rotates: the tickets held for upstreams are dropped.
	clientCerts.cur.Store(m.ca.issue(t, frontendID))
	step("after client rotation", u, false)
	step("after client rotation, again", u, true)

	// The server's certificate rotates: its ticket key goes with it, the
	// ticket we hold no longer opens.
	serverCerts.cur.Store(m.ca.issue(t, catalogID))
	step("after server rotation", u, false)
	step("after server rotation, again", u, true)
}
