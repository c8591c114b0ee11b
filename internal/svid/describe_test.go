package svid

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/internal/ca"
)

func TestDescribe(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	a := runAgent(t, c.agentConfig(t, "default", "sleep", &logBuffer{}))
	waitReady(t, a)
	chain := a.Chain()
	leaf := chain[0]

	tests := []struct {
		name    string
		now     time.Time
		renewAt time.Time
		roots   bool
		want    []string
	}{
		{name: "fresh", now: clock.Now(), renewAt: a.RenewAt(), want: []string{
			"URI SAN:          spiffe://cluster.local/ns/default/sa/sleep",
			"Issuer:           CN=Palisade Intermediate CA 1,O=cluster.local",
			"Time to expiry:   1h0m0s",
			"Time to rotation:",
			"Chain:            3 certificates",
		}},
		{name: "expired", now: leaf.NotAfter.Add(time.Second), want: []string{"Time to expiry:   EXPIRED"}},
		{name: "with the trust bundle", now: clock.Now(), roots: true, want: []string{
			"Trust bundle:     CN=Palisade Root CA",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Describe(chain, tt.now, tt.renewAt)
			if err != nil {
				t.Fatal(err)
			}
			if tt.roots {
				d.WithRoots(a.Bundle().Roots())
				if len(d.TrustBundle) != 1 || d.TrustBundle[0].SHA256Fingerprint == "" {
					t.Errorf("trust bundle %+v, want the one root", d.TrustBundle)
				}
			}
			text := d.Text()
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q:\n%s", w, text)
				}
			}
			js, err := d.JSON()
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			if back["serialNumber"] != d.Serial || back["uriSANs"].([]any)[0] != "spiffe://cluster.local/ns/default/sa/sleep" {
				t.Errorf("JSON = %s", js)
			}
		})
	}
	if _, err := Describe(nil, clock.Now(), time.Time{}); err == nil {
		t.Error("Describe of an empty chain succeeded")
	}

	t.Run("pem is readable by openssl", func(t *testing.T) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("openssl not found")
			}
			t.Skip("openssl not found")
		}
		d, _ := Describe(chain, clock.Now(), a.RenewAt())
		p := filepath.Join(t.TempDir(), "chain.pem")
		if err := os.WriteFile(p, d.PEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(d.PEM()), "PRIVATE KEY") {
			t.Fatal("PEM output holds a private key")
		}
		out, err := exec.Command(openssl, "x509", "-in", p, "-noout", "-text").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "URI:spiffe://cluster.local/ns/default/sa/sleep") {
			t.Fatalf("openssl x509: %v\n%s", err, out)
		}
	})
}
