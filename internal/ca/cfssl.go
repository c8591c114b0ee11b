package ca

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"palisade.dev/palisade/internal/identity"
)

// CFSSLOptions configure a CFSSLSigner.
type CFSSLOptions struct {
	// URL of the `cfssl serve` API, e.g. https://ca.internal:8888.
	URL string
	// AuthKey is the hex HMAC key of the profile's "standard" auth_key.
	// When set, requests go to /api/v1/cfssl/authsign, otherwise to the
	// unauthenticated /api/v1/cfssl/sign.
	AuthKey string
	// Profile names the CFSSL signing profile ("" is the default profile).
	// Its expiry sets the certificate lifetime: CFSSL's HTTP API takes no
	// per-request validity.
	Profile string
	// Chain is the CFSSL CA's certificate and any intermediates above it,
	// signing certificate first, with or without the root.
	Chain []*x509.Certificate
	// Bundle holds the roots Chain leads to.
	Bundle *identity.Bundle
	// HTTPClient defaults to one with a 30s timeout.
	HTTPClient *http.Client
	Clock      func() time.Time
}

// CFSSLSigner hands signing to an external CA through CFSSL's remote signer
// API, the way istio-csr hands requests to cert-manager. The identity is
// sent as the only "hosts" entry, which replaces whatever SANs the CSR asked
// for; every answer is checked (identity, key, CA:FALSE, usages, chain)
// before it is returned.
type CFSSLSigner struct {
	opts          CFSSLOptions
	intermediates []*x509.Certificate
	root          *x509.Certificate
}

var _ Signer = (*CFSSLSigner)(nil)

// NewCFSSLSigner checks the options and returns a signer.
func NewCFSSLSigner(opts CFSSLOptions) (*CFSSLSigner, error) {
	if opts.URL == "" || len(opts.Chain) == 0 || opts.Bundle.Len() == 0 {
		return nil, errors.New("ca: cfssl: URL, Chain and Bundle are required")
	}
	if opts.AuthKey != "" {
		if _, err := hex.DecodeString(opts.AuthKey); err != nil {
			return nil, fmt.Errorf("ca: cfssl: auth key is not hex: %w", err)
		}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	chains, err := opts.Chain[0].Verify(x509.VerifyOptions{
		Roots: opts.Bundle.CertPool(), Intermediates: poolOf(opts.Chain[1:]),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: opts.Clock(),
	})
	if err != nil {
		return nil, fmt.Errorf("ca: cfssl: the CA chain does not lead to the bundle: %w", err)
	}
	path := chains[0]
	return &CFSSLSigner{opts: opts, intermediates: path[:len(path)-1], root: path[len(path)-1]}, nil
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// Bundle implements Signer.
func (s *CFSSLSigner) Bundle() *identity.Bundle { return s.opts.Bundle }

type cfsslSignRequest struct {
	Hosts   []string `json:"hosts"`
	Request string   `json:"certificate_request"`
	Profile string   `json:"profile,omitempty"`
}

type cfsslAuthRequest struct {
	Token   []byte `json:"token"`
	Request []byte `json:"request"`
}

type cfsslResponse struct {
	Success bool `json:"success"`
	Result  struct {
		Certificate string `json:"certificate"`
	} `json:"result"`
	Errors []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Sign implements Signer. req.TTL is not sent (see CFSSLOptions.Profile).
func (s *CFSSLSigner) Sign(ctx context.Context, req Request) ([]*x509.Certificate, error) {
	if req.CSR == nil || len(req.CSR.Raw) == 0 {
		return nil, fmt.Errorf("ca: cfssl sign: %w: a complete CSR is required", ErrBadCSR)
	}
	if !req.ID.MemberOf(s.opts.Bundle.TrustDomain()) {
		return nil, fmt.Errorf("ca: cfssl sign: identity %q is not in trust domain %q", req.ID, s.opts.Bundle.TrustDomain())
	}
	inner, err := json.Marshal(cfsslSignRequest{
		Hosts:   []string{req.ID.String()},
		Request: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		Profile: s.opts.Profile,
	})
	if err != nil {
		return nil, fmt.Errorf("ca: cfssl sign: %w", err)
	}
	body, path := inner, "/api/v1/cfssl/sign"
	if s.opts.AuthKey != "" {
		key, _ := hex.DecodeString(s.opts.AuthKey)
		mac := hmac.New(sha256.New, key)
		mac.Write(inner)
		if body, err = json.Marshal(cfsslAuthRequest{Token: mac.Sum(nil), Request: inner}); err != nil {
			return nil, fmt.Errorf("ca: cfssl sign: %w", err)
		}
		path = "/api/v1/cfssl/authsign"
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.opts.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("ca: cfssl sign: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := s.opts.HTTPClient.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("ca: cfssl sign: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("ca: cfssl sign: read answer: %w", err)
	}
	var out cfsslResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("ca: cfssl sign: HTTP %d, undecodable answer: %w", resp.StatusCode, err)
	}
	if !out.Success || resp.StatusCode != http.StatusOK {
		var msgs []string
		for _, e := range out.Errors {
			msgs = append(msgs, fmt.Sprintf("%d %s", e.Code, e.Message))
		}
		return nil, fmt.Errorf("ca: cfssl sign: HTTP %d: %s", resp.StatusCode, strings.Join(msgs, "; "))
	}
	certs, err := identity.ParseCertificatesPEM([]byte(out.Result.Certificate))
	if err != nil {
		return nil, fmt.Errorf("ca: cfssl sign: answer: %w", err)
	}
	leaf := certs[0]
	if err := s.checkLeaf(leaf, req); err != nil {
		return nil, fmt.Errorf("ca: cfssl sign: external CA answer refused: %w", err)
	}
	chain := append([]*x509.Certificate{leaf}, s.intermediates...)
	return append(chain, s.root), nil
}

// checkLeaf fails closed on anything a mesh certificate must not be.
func (s *CFSSLSigner) checkLeaf(leaf *x509.Certificate, req Request) error {
	err := checkIssued(leaf, req, s.opts.Bundle, s.intermediates, s.opts.Clock())
	if errors.Is(err, errNoAuthUsages) {
		return fmt.Errorf("%w (fix the CFSSL profile's usages)", err)
	}
	return err
}
