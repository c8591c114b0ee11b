package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"palisade.dev/palisade/internal/identity"
)

var (
	errNotReady     = errors.New("not ready yet")
	errNoAuthUsages = errors.New("certificate lacks serverAuth or clientAuth")
)

// permanent stops retry.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retry calls f with capped exponential backoff (50ms to 2s) until it
// succeeds, returns a permanent error, or ctx ends; it then returns the
// last error seen.
func retry(ctx context.Context, f func() error) error {
	delay := 50 * time.Millisecond
	for {
		err := f()
		var p permanent
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p):
			return p.error
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// checkCSRIdentity refuses a CSR that asks for anything but the
// authenticated identity: cert-manager issuers sign the CSR's SANs.
func checkCSRIdentity(req Request) error {
	if req.CSR == nil || len(req.CSR.Raw) == 0 {
		return fmt.Errorf("%w: a complete CSR is required", ErrBadCSR)
	}
	c := req.CSR
	if len(c.URIs) != 1 || c.URIs[0].String() != req.ID.String() {
		return fmt.Errorf("%w: CSR URI SANs %v, want exactly the caller's identity %s", ErrBadCSR, csrURIs(c), req.ID)
	}
	if len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) > 0 {
		return fmt.Errorf("%w: CSR asks for DNS, IP or email SANs; a workload certificate carries only its SPIFFE ID", ErrBadCSR)
	}
	return nil
}

// checkIssued fails closed on anything a mesh certificate must not be.
func checkIssued(leaf *x509.Certificate, req Request, bundle *identity.Bundle, intermediates []*x509.Certificate, now time.Time) error {
	if !publicKeyEqual(req.CSR.PublicKey, leaf.PublicKey) {
		return errors.New("certificate is for another key")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != req.ID.String() {
		return fmt.Errorf("certificate URI SANs %v, want exactly %s", leaf.URIs, req.ID)
	}
	if leaf.IsCA {
		return errors.New("certificate is a CA")
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(leaf.ExtKeyUsage, u) {
			return errNoAuthUsages
		}
	}
	_, err := identity.VerifyChain(bundle, append([]*x509.Certificate{leaf}, intermediates...), now)
	return err
}

// crStatus is what a CertificateRequest's status says.
type crStatus struct {
	approved, ready bool
	certificate, ca []byte
}

func (s crStatus) done() bool { return s.approved && s.ready && len(s.certificate) > 0 }

// readStatus reads the conditions; a Denied, Failed or InvalidRequest
// request is an ErrRefused with cert-manager's reason and message.
func readStatus(u *unstructured.Unstructured) (crStatus, error) {
	var st crStatus
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		typ, _ := m["type"].(string)
		status, _ := m["status"].(string)
		reason, _ := m["reason"].(string)
		msg, _ := m["message"].(string)
		switch {
		case typ == "Denied" && status == "True":
			return st, fmt.Errorf("%w: Denied (%s): %s", ErrRefused, reason, msg)
		case typ == "InvalidRequest" && status == "True":
			return st, fmt.Errorf("%w: InvalidRequest (%s): %s", ErrRefused, reason, msg)
		case typ == "Ready" && status == "False" && reason == "Failed":
			return st, fmt.Errorf("%w: Failed: %s", ErrRefused, msg)
		case typ == "Approved" && status == "True":
			st.approved = true
		case typ == "Ready" && status == "True":
			st.ready = true
		}
	}
	cert, _, _ := unstructured.NestedString(u.Object, "status", "certificate")
	ca, _, _ := unstructured.NestedString(u.Object, "status", "ca")
	var err error
	if st.certificate, err = base64.StdEncoding.DecodeString(cert); err != nil {
		return st, fmt.Errorf("status.certificate: %w", err)
	}
	if st.ca, err = base64.StdEncoding.DecodeString(ca); err != nil {
		return st, fmt.Errorf("status.ca: %w", err)
	}
	return st, nil
}

// newIdentityCSR makes a P-256 key and a CSR for id, for the control
// plane's own certificates.
func newIdentityCSR(id spiffeid.ID) (*x509.CertificateRequest, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	return csr, key, err
}
