package ca

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"palisade.dev/palisade/internal/identity"
)

type testServer struct {
	addr   string
	ca     *Authority
	tokens *JoinTokens
	clock  *fakeClock
}

// startServer runs the CA server over TLS on 127.0.0.1.
func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerWith(t, Options{})
}

// startServerWith runs the CA server with an Authority of opts (trust
// domain and clock filled in).
func startServerWith(t *testing.T, opts Options) *testServer {
	t.Helper()
	clock := newFakeClock()
	opts.TrustDomain, opts.Clock = td, clock.Now
	a, err := Init(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	tokens := NewJoinTokens(td, clock.Now)
	srv, err := NewServer(a, Chain{tokens, CertificateAuthenticator{Bundle: a.Bundle, Clock: clock.Now}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	serving := NewServingCertificate(a, identity.ControlPlaneID(td), 0, clock.Now)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(ServerTLSConfig(serving))))
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return &testServer{addr: ln.Addr().String(), ca: a, tokens: tokens, clock: clock}
}

// client dials the CA, checking its identity; cert, if set, is presented.
func (s *testServer) client(t *testing.T, cert *tls.Certificate) securityv1alpha1.IstioCertificateServiceClient {
	t.Helper()
	cfg := identity.TLSClientConfig(s.ca.Bundle(), s.clock.Now, identity.AuthorizeID(identity.ControlPlaneID(td)))
	if cert != nil {
		cfg = identity.MTLSClientConfig(staticCert{cert}, s.ca.Bundle(), s.clock.Now, identity.AuthorizeID(identity.ControlPlaneID(td)))
	}
	cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return securityv1alpha1.NewIstioCertificateServiceClient(cc)
}

func csrPEM(t *testing.T, uris ...string) (any, string) {
	t.Helper()
	key, csr := newCSR(t, uris)
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw}))
}

func withToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func parseChain(t *testing.T, pems []string) []*x509.Certificate {
	t.Helper()
	certs, err := identity.ParseCertificatesPEM([]byte(strings.Join(pems, "")))
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func TestCreateCertificateWithJoinToken(t *testing.T) {
	s := startServer(t)
	c := s.client(t, nil)
	tok, err := s.tokens.Issue("default", "sleep", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The CSR asks for another identity: only the token's one is issued.
	_, csr := csrPEM(t, "spiffe://cluster.local/ns/istio-system/sa/palisade-control-plane")
	resp, err := c.CreateCertificate(withToken(tok), &securityv1alpha1.IstioCertificateRequest{Csr: csr, ValidityDuration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.CertChain) != 3 {
		t.Fatalf("cert_chain has %d entries, want leaf, intermediate, root", len(resp.CertChain))
	}
	chain := parseChain(t, resp.CertChain)
	if got := chain[0].URIs; len(got) != 1 || got[0].String() != "spiffe://cluster.local/ns/default/sa/sleep" {
		t.Errorf("URI SANs = %v", got)
	}
	if got := chain[0].NotAfter.Sub(s.clock.Now()); got != time.Hour {
		t.Errorf("lifetime = %s, want 1h", got)
	}
	if !chain[2].Equal(s.ca.Bundle().Roots()[0]) {
		t.Error("root is not last")
	}
	checkWithOpenSSL(t, s.ca.Bundle(), chain, "spiffe://cluster.local/ns/default/sa/sleep")
}

func TestCreateCertificateRefusals(t *testing.T) {
	s := startServer(t)
	c := s.client(t, nil)
	_, csr := csrPEM(t)

	used, _ := s.tokens.Issue("default", "sleep", time.Hour)
	if _, err := c.CreateCertificate(withToken(used), &securityv1alpha1.IstioCertificateRequest{Csr: csr}); err != nil {
		t.Fatal(err)
	}
	expired, _ := s.tokens.Issue("default", "sleep", time.Minute)
	s.clock.Advance(2 * time.Minute)
	valid, _ := s.tokens.Issue("default", "sleep", time.Hour)
	raw := make([]byte, 32)
	rand.Read(raw)
	forged := JoinTokenPrefix + fmt.Sprintf("%x", raw)
	tampered := valid[:len(valid)-2] + "AA"
	if tampered == valid {
		tampered = valid[:len(valid)-2] + "BB"
	}

	tests := []struct {
		name     string
		ctx      context.Context
		csr      string
		ttl      int64
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "reused token", ctx: withToken(used), csr: csr, wantCode: codes.Unauthenticated, wantMsg: "join token already used"},
		{name: "expired token", ctx: withToken(expired), csr: csr, wantCode: codes.Unauthenticated, wantMsg: "join token expired"},
		{name: "forged token", ctx: withToken(forged), csr: csr, wantCode: codes.Unauthenticated, wantMsg: "join token not recognized"},
		{name: "tampered token", ctx: withToken(tampered), csr: csr, wantCode: codes.Unauthenticated, wantMsg: "join token not recognized"},
		{name: "no credentials", ctx: context.Background(), csr: csr, wantCode: codes.Unauthenticated, wantMsg: "no credentials"},
		{name: "unknown bearer token kind", ctx: withToken("eyJhbGciOiJSUzI1NiJ9.e30.sig"), csr: csr, wantCode: codes.Unauthenticated, wantMsg: "no credentials"},
		{name: "malformed csr keeps the token", ctx: withToken(valid), csr: "not a csr", wantCode: codes.InvalidArgument, wantMsg: "invalid CSR"},
		{name: "ttl over the max keeps the token", ctx: withToken(valid), csr: csr, ttl: int64((100 * 24 * time.Hour).Seconds()), wantCode: codes.InvalidArgument, wantMsg: "maximum"},
		{name: "ttl overflowing a duration keeps the token", ctx: withToken(valid), csr: csr, ttl: math.MaxInt64, wantCode: codes.InvalidArgument, wantMsg: "maximum"},
		{name: "negative ttl keeps the token", ctx: withToken(valid), csr: csr, ttl: -5, wantCode: codes.InvalidArgument, wantMsg: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.CreateCertificate(tt.ctx, &securityv1alpha1.IstioCertificateRequest{Csr: tt.csr, ValidityDuration: tt.ttl})
			if resp != nil && len(resp.CertChain) > 0 {
				t.Fatal("got a certificate")
			}
			st, _ := status.FromError(err)
			if st.Code() != tt.wantCode || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Errorf("status = %v %q, want %v containing %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
		})
	}
	// None of the refusals of the request itself spent the token.
	if _, err := s.tokens.Redeem(valid); err != nil {
		t.Errorf("Redeem after the refusals: %v, want the token unspent", err)
	}
}

// A CSR asking for more than the max TTL is refused, as istiod refuses it
// (InvalidArgument, not a shorter certificate), and before the join token
// is redeemed: the same token then gets a certificate asking for the max.
func TestCreateCertificateTTLOverMaxKeepsToken(t *testing.T) {
	s := startServerWith(t, Options{DefaultTTL: time.Hour, MaxTTL: 48 * time.Hour})
	c := s.client(t, nil)
	tok, err := s.tokens.Issue("default", "sleep", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, csr := csrPEM(t)
	resp, err := c.CreateCertificate(withToken(tok), &securityv1alpha1.IstioCertificateRequest{Csr: csr, ValidityDuration: int64((49 * time.Hour).Seconds())})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "max 48h0m0s") {
		t.Fatalf("49h with max 48h: status %v %q (resp %v), want InvalidArgument naming the max", st.Code(), st.Message(), resp)
	}
	resp, err = c.CreateCertificate(withToken(tok), &securityv1alpha1.IstioCertificateRequest{Csr: csr, ValidityDuration: int64((48 * time.Hour).Seconds())})
	if err != nil {
		t.Fatalf("48h with the same token: %v", err)
	}
	chain := parseChain(t, resp.CertChain)
	if got := chain[0].NotAfter.Sub(s.clock.Now()); got != 48*time.Hour {
		t.Errorf("lifetime = %s, want 48h", got)
	}
	if _, err := s.tokens.Redeem(tok); err != ErrTokenUsed {
		t.Errorf("Redeem after the certificate: %v, want ErrTokenUsed", err)
	}
}

func TestCreateCertificateRenewsWithClientCertificate(t *testing.T) {
	s := startServer(t)
	id := mustID(t, "default", "sleep")
	held := signWithKeyAny(t, s.ca, id)
	c := s.client(t, &held)
	_, csr := csrPEM(t, "spiffe://cluster.local/ns/default/sa/other")
	resp, err := c.CreateCertificate(context.Background(), &securityv1alpha1.IstioCertificateRequest{Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	if got := parseChain(t, resp.CertChain)[0].URIs[0].String(); got != id.String() {
		t.Errorf("renewed identity = %s, want %s", got, id)
	}

	t.Run("certificate from another CA", func(t *testing.T) {
		other := newTestAuthority(t, s.clock, KeyEC)
		foreign := signWithKeyAny(t, other, id)
		c := s.client(t, &foreign)
		_, err := c.CreateCertificate(context.Background(), &securityv1alpha1.IstioCertificateRequest{Csr: csr})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("err = %v, want Unauthenticated", err)
		}
	})
	t.Run("expired certificate", func(t *testing.T) {
		s.clock.Advance(2 * time.Hour) // held was issued for 1h
		_, err := c.CreateCertificate(context.Background(), &securityv1alpha1.IstioCertificateRequest{Csr: csr})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("err = %v, want Unauthenticated", err)
		}
	})
}

func TestJoinTokensStoreOnlyHashes(t *testing.T) {
	j := NewJoinTokens(td, nil)
	tok, err := j.Issue("ns", "sa", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(tok, JoinTokenPrefix)
	if dump := fmt.Sprintf("%#v %v", j.byHash, j.byHash); strings.Contains(dump, secret) {
		t.Error("token store holds the token itself")
	}
	id, err := j.Redeem(tok)
	if err != nil || id != mustID(t, "ns", "sa") {
		t.Errorf("Redeem = %v, %v", id, err)
	}
	for _, bad := range []struct{ ns, sa string }{{"", "sa"}, {"ns", ""}} {
		if _, err := j.Issue(bad.ns, bad.sa, time.Hour); err == nil {
			t.Errorf("Issue(%q, %q) succeeded", bad.ns, bad.sa)
		}
	}
	if _, err := j.Issue("ns", "sa", 0); err == nil {
		t.Error("Issue with zero ttl succeeded")
	}
}

// A short-lived serving certificate is kept for half its lifetime from
// issuance: the backdated NotBefore must not make every handshake sign.
func TestServingCertificateShortTTLKeptHalfItsLife(t *testing.T) {
	clock := newFakeClock()
	a := newTestAuthority(t, clock, KeyEC)
	serving := NewServingCertificate(a, identity.ControlPlaneID(td), time.Minute, clock.Now)
	first, err := serving.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(29 * time.Second)
	if again, _ := serving.GetCertificate(nil); again != first {
		t.Error("a new serving certificate before half its lifetime")
	}
	clock.Advance(2 * time.Second)
	// Due: the current one still serves while the renewal runs.
	if due, err := serving.GetCertificate(nil); err != nil || due != first {
		t.Errorf("a due but valid serving certificate was not served while renewing: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		later, err := serving.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if later != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the serving certificate was not renewed after half its lifetime")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failingSigner refuses every request until ok is set.
type failingSigner struct {
	Signer
	fail atomic.Bool
}

func (f *failingSigner) Sign(ctx context.Context, req Request) ([]*x509.Certificate, error) {
	if f.fail.Load() {
		return nil, errors.New("issuer down")
	}
	return f.Signer.Sign(ctx, req)
}

// An issuer that is down does not break handshakes while the serving
// certificate is valid; once it has expired, they fail with the reason.
func TestServingCertificateOutlivesAFailingIssuer(t *testing.T) {
	clock := newFakeClock()
	s := &failingSigner{Signer: newTestAuthority(t, clock, KeyEC)}
	serving := NewServingCertificate(s, identity.ControlPlaneID(td), time.Minute, clock.Now)
	first, err := serving.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	s.fail.Store(true)
	clock.Advance(45 * time.Second)
	for range 50 {
		if got, err := serving.GetCertificate(nil); err != nil || got != first {
			t.Fatalf("handshake with a valid certificate and a failing issuer: %v", err)
		}
	}
	clock.Advance(20 * time.Second)
	if _, err := serving.GetCertificate(nil); err == nil || !strings.Contains(err.Error(), "issuer down") {
		t.Fatalf("expired serving certificate, issuer down: err = %v", err)
	}
	s.fail.Store(false)
	if got, err := serving.GetCertificate(nil); err != nil || got == first {
		t.Fatalf("issuer back: %v", err)
	}
}
