package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// fakeClock is a settable clock shared by the CA under test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newCSR makes a P-256 key and a CSR asking for the given URI SANs and DNS
// names.
func newCSR(t testing.TB, uris []string, dns ...string) (*ecdsa.PrivateKey, *x509.CertificateRequest) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{DNSNames: dns}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// newCSRFor makes a CSR with no SANs for key.
func newCSRFor(t testing.TB, key crypto.Signer) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func newTestAuthority(t testing.TB, clock *fakeClock, kt KeyType) *Authority {
	t.Helper()
	a, err := Init(t.TempDir(), Options{TrustDomain: td, KeyType: kt, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustID(t testing.TB, ns, sa string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromSegments(td, "ns", ns, "sa", sa)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type spiffeIDType = spiffeid.ID

func mustTD(t testing.TB, name string) spiffeid.TrustDomain {
	t.Helper()
	d, err := spiffeid.TrustDomainFromString(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
