package xfcc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"
)

func TestForward(t *testing.T) {
	const in = "By=a;Hash=1;URI=x"
	const cur = "By=b;Hash=2;Subject=\"\";URI=y"
	tests := []struct {
		name       string
		mode       Mode
		incoming   string
		clientCert bool
		want       string
		wantKeep   bool
	}{
		{name: "sanitize removes", mode: Sanitize, incoming: in, clientCert: true},
		{name: "forward only keeps on mtls", mode: ForwardOnly, incoming: in, clientCert: true, want: in, wantKeep: true},
		{name: "forward only removes on plaintext", mode: ForwardOnly, incoming: in},
		{name: "forward only, nothing to forward", mode: ForwardOnly, clientCert: true},
		{name: "append forward appends", mode: AppendForward, incoming: in, clientCert: true, want: in + "," + cur, wantKeep: true},
		{name: "append forward sets when absent", mode: AppendForward, clientCert: true, want: cur, wantKeep: true},
		{name: "append forward removes forged header on plaintext", mode: AppendForward, incoming: in},
		{name: "sanitize set replaces", mode: SanitizeSet, incoming: in, clientCert: true, want: cur, wantKeep: true},
		{name: "sanitize set removes on plaintext", mode: SanitizeSet, incoming: in},
		{name: "always forward only on plaintext", mode: AlwaysForwardOnly, incoming: in, want: in, wantKeep: true},
		{name: "always forward only, nothing", mode: AlwaysForwardOnly, clientCert: true},
		{name: "unknown mode fails closed", mode: Mode(42), incoming: in, clientCert: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, keep := Forward(tt.mode, tt.incoming, tt.clientCert, cur)
			if got != tt.want || keep != tt.wantKeep {
				t.Errorf("Forward = %q, %v; want %q, %v", got, keep, tt.want, tt.wantKeep)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Sanitize, ForwardOnly, AppendForward, SanitizeSet, AlwaysForwardOnly} {
		t.Run(m.String(), func(t *testing.T) {
			got, err := ParseMode(m.String())
			if err != nil || got != m {
				t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
			}
		})
	}
	if _, err := ParseMode("sanitize_set"); err == nil {
		t.Error("ParseMode accepted a lower-case name")
	}
	if s := Mode(9).String(); s != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", s)
	}
}

// testCert makes a self-signed certificate with the given names.
func testCert(t testing.TB, cn string, uris []string, dns []string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Unix(1700000000, 0),
		NotAfter:     time.Unix(1700000000, 0).Add(time.Hour),
		DNSNames:     dns,
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewElement(t *testing.T) {
	server := testCert(t, "", []string{pcID}, nil)
	client := testCert(t, "", []string{feID}, nil)
	ca := testCert(t, "Test CA", nil, nil)
	named := testCert(t, `Client, "One"`, []string{feID, "https://example.com/x"}, []string{"a.example", "b.example"})
	sum := sha256.Sum256(client.Raw)
	clientHash := hex.EncodeToString(sum[:])

	t.Run("istio sidecar element", func(t *testing.T) {
		got := Current(server, []*x509.Certificate{client, ca}, IstioSidecar)
		want := "By=" + pcID + ";Hash=" + clientHash + `;Subject="";URI=` + feID
		if got != want {
			t.Errorf("Current =\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("subject, several sans", func(t *testing.T) {
		e := NewElement(server, []*x509.Certificate{named}, IstioSidecar)
		if e.Subject != `CN=Client\, \"One\"` {
			t.Errorf("Subject = %q", e.Subject)
		}
		if len(e.URI) != 2 || e.URI[1] != "https://example.com/x" || len(e.DNS) != 2 || e.DNS[0] != "a.example" {
			t.Errorf("URI %q DNS %q", e.URI, e.DNS)
		}
		back, err := Parse(Current(server, []*x509.Certificate{named}, IstioSidecar))
		if err != nil || len(back) != 1 || back[0].Subject != `CN=Client\, "One"` || len(back[0].DNS) != 2 {
			t.Errorf("Parse(Current) = %#v, %v", back, err)
		}
	})

	t.Run("cert and chain decode to the certificates", func(t *testing.T) {
		e := NewElement(nil, []*x509.Certificate{client, ca}, All)
		if e.By != nil {
			t.Errorf("By = %q without a local certificate", e.By)
		}
		for _, tc := range []struct {
			field string
			val   string
			want  []*x509.Certificate
		}{{"Cert", e.Cert, []*x509.Certificate{client}}, {"Chain", e.Chain, []*x509.Certificate{client, ca}}} {
			p, err := url.PathUnescape(tc.val)
			if err != nil {
				t.Fatalf("%s: %v", tc.field, err)
			}
			rest := []byte(p)
			for i, want := range tc.want {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil || string(b.Bytes) != string(want.Raw) {
					t.Fatalf("%s: certificate %d does not match", tc.field, i)
				}
			}
			if len(rest) != 0 {
				t.Errorf("%s: %d trailing bytes", tc.field, len(rest))
			}
		}
		back, err := Parse(e.String())
		if err != nil || back[0].Cert != e.Cert || back[0].Chain != e.Chain {
			t.Errorf("Cert/Chain do not survive a round trip: %v", err)
		}
	})

	t.Run("no peer certificate", func(t *testing.T) {
		e := NewElement(server, nil, All)
		if e.Hash != "" || e.URI != nil || len(e.By) != 1 {
			t.Errorf("element = %#v", e)
		}
	})
}
