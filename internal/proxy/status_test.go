package proxy_test

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/proxy"
)

// heldChain is a sidecar holding one certificate and a bundle of one root.
type heldChain struct {
	chain   []*x509.Certificate
	renewAt time.Time
	bundle  *identity.Bundle
}

func (h heldChain) Chain() []*x509.Certificate { return h.chain }
func (h heldChain) RenewAt() time.Time         { return h.renewAt }
func (h heldChain) Bundle() *identity.Bundle   { return h.bundle }

// TestStatusCerts: the status listener, which the API server's pod proxy
// reaches, answers /certs with the chain, the renewal time and the roots,
// as the admin listener does, and never a key.
func TestStatusCerts(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.issue(t, "spiffe://cluster.local/ns/workshop/sa/frontend-sa")
	var chain []*x509.Certificate
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	bundle, err := identity.NewBundle(spiffeid.RequireTrustDomainFromString("cluster.local"), ca.cert)
	if err != nil {
		t.Fatal(err)
	}
	renewAt := time.Now().Add(30 * time.Minute).UTC().Truncate(time.Second)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := proxy.NewStore(log, func(proxy.Resources) (*proxy.Compiled, error) { return &proxy.Compiled{}, nil })
	src := proxy.AdminSources{Store: store, Certs: heldChain{chain: chain, renewAt: renewAt, bundle: bundle}}
	st, err := proxy.StartStatus("127.0.0.1:0", proxy.NewProbeForwarder(nil, "127.0.0.1", log), src, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	admin, err := proxy.StartAdmin("127.0.0.1:0", src, log)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, addr := range []string{st.Addr(), admin.Addr()} {
		resp, err := http.Get("http://" + addr + "/certs")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s/certs: %s: %s", addr, resp.Status, body)
		}
		if strings.Contains(string(body), "PRIVATE KEY") {
			t.Fatalf("%s/certs holds a key: %s", addr, body)
		}
		var got proxy.CertsReport
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		back, err := identity.ParseCertificatesPEM([]byte(got.ChainPEM))
		if err != nil || len(back) != 2 || back[0].SerialNumber.Cmp(chain[0].SerialNumber) != 0 {
			t.Errorf("%s/certs chain: %v, %d certificates", addr, err, len(back))
		}
		roots, err := identity.ParseCertificatesPEM([]byte(got.RootsPEM))
		if err != nil || len(roots) != 1 || !roots[0].Equal(ca.cert) {
			t.Errorf("%s/certs roots: %v, %d roots", addr, err, len(roots))
		}
		if !got.RenewAt.Equal(renewAt) {
			t.Errorf("%s/certs renewAt %v, want %v", addr, got.RenewAt, renewAt)
		}
	}
}
