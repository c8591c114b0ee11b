package inject

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/ca"
)

// countingIssuer is the mesh CA, counting what it issues.
type countingIssuer struct {
	a *ca.Authority
	n atomic.Int32
}

func (c *countingIssuer) ServingCertificate(dns []string, ips []net.IP, ttl time.Duration) (*tls.Certificate, error) {
	c.n.Add(1)
	return c.a.ServingCertificate(dns, ips, ttl)
}

func TestStart(t *testing.T) {
	a, err := ca.Init(t.TempDir(), ca.Options{TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local")})
	if err != nil {
		t.Fatal(err)
	}
	iss := &countingIssuer{a: a}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fs := flag.NewFlagSet("cp", flag.ContinueOnError)
	sf, cfg := RegisterServeFlags(fs), RegisterFlags(fs)
	if srv, err := Start(sf, *cfg, iss, nil, log); srv != nil || err != nil {
		t.Fatalf("no --webhook-listen: %v %v", srv, err)
	}
	if err := fs.Parse([]string{"--webhook-listen=127.0.0.1:0", "--webhook-ips=127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(sf, *cfg, iss, nil, log); err == nil || !strings.Contains(err.Error(), "image is required") {
		t.Fatalf("no image: %v", err)
	}
	cfg.Image = "palisade-proxy:1"
	srv, err := Start(sf, *cfg, iss, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	roots := x509.NewCertPool()
	for _, r := range a.Bundle().Roots() {
		roots.AddCert(r)
	}
	// The API server's view: the mesh roots as caBundle, 127.0.0.1 as host.
	conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS to the webhooks with the mesh roots: %v", err)
	}
	conn.Close()
	if _, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: roots, ServerName: "palisade.other.svc"}); err == nil {
		t.Fatal("verified for a name the certificate lacks")
	}

	sf.CertFile = "cert.pem"
	if _, err := sf.Certificate(iss, time.Now); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("cert without key: %v", err)
	}
	sf.CertFile, sf.IPs = "", "not-an-ip"
	if _, err := sf.Certificate(iss, time.Now); err == nil || !strings.Contains(err.Error(), `"not-an-ip"`) {
		t.Fatalf("bad IP: %v", err)
	}
	if _, err := (&ServeFlags{}).Certificate(nil, time.Now); err == nil {
		t.Fatal("no issuer and no files")
	}
}

func TestMeshCertificateRenews(t *testing.T) {
	a, err := ca.Init(t.TempDir(), ca.Options{TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local")})
	if err != nil {
		t.Fatal(err)
	}
	iss := &countingIssuer{a: a}
	now := time.Now()
	clock := func() time.Time { return now }
	get, err := MeshCertificate(iss, []string{"palisade.istio-system.svc"}, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := get(nil)
	if again, _ := get(nil); again != first || iss.n.Load() != 1 {
		t.Fatalf("reissued before half life (%d issued)", iss.n.Load())
	}
	now = now.Add(servingTTL/2 + time.Minute)
	next, err := get(nil)
	if err != nil || next == first || iss.n.Load() != 2 {
		t.Fatalf("not renewed after half life: %v (%d issued)", err, iss.n.Load())
	}
}
