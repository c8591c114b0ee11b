package svid

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"palisade.dev/palisade/internal/identity"
)

// Description is what `palisade proxy-config secret` shows of a workload
// certificate.
type Description struct {
	Subject        string    `json:"subject"`
	Issuer         string    `json:"issuer"`
	URISANs        []string  `json:"uriSANs"`
	Serial         string    `json:"serialNumber"`
	NotBefore      time.Time `json:"notBefore"`
	NotAfter       time.Time `json:"notAfter"`
	TimeToExpiry   string    `json:"timeToExpiry"`
	RenewAt        time.Time `json:"renewAt,omitzero"`
	TimeToRotation string    `json:"timeToRotation,omitempty"`
	Expired        bool      `json:"expired"`
	ChainLength    int       `json:"chainLength"`
	Root           string    `json:"root,omitempty"`
	// TrustBundle is the roots the sidecar verifies its peers with, set
	// by WithRoots.
	TrustBundle []identity.RootInfo `json:"trustBundle,omitempty"`

	chain []*x509.Certificate
}

// Describe summarises chain (leaf first) at time now; renewAt is when the
// agent plans to rotate it (zero if unknown).
func Describe(chain []*x509.Certificate, now, renewAt time.Time) (*Description, error) {
	if len(chain) == 0 {
		return nil, errors.New("svid: describe: empty chain")
	}
	leaf := chain[0]
	d := &Description{
		Subject:      leaf.Subject.String(),
		Issuer:       leaf.Issuer.String(),
		Serial:       formatSerial(leaf.SerialNumber.Bytes()),
		NotBefore:    leaf.NotBefore.UTC(),
		NotAfter:     leaf.NotAfter.UTC(),
		TimeToExpiry: leaf.NotAfter.Sub(now).Round(time.Second).String(),
		Expired:      !now.Before(leaf.NotAfter),
		ChainLength:  len(chain),
		chain:        chain,
	}
	for _, u := range leaf.URIs {
		d.URISANs = append(d.URISANs, u.String())
	}
	if !renewAt.IsZero() {
		d.RenewAt = renewAt.UTC()
		d.TimeToRotation = max(renewAt.Sub(now), 0).Round(time.Second).String()
	}
	if last := chain[len(chain)-1]; len(chain) > 1 && isSelfSigned(last) {
		d.Root = last.Subject.String() + " (sha256 " + identity.Fingerprint(last)[:16] + "…)"
	}
	return d, nil
}

// WithRoots adds the roots of the trust bundle in use, oldest first.
func (d *Description) WithRoots(roots []*x509.Certificate) *Description {
	d.TrustBundle = nil
	for _, r := range roots {
		d.TrustBundle = append(d.TrustBundle, identity.RootInfo{
			Subject:           r.Subject.String(),
			SHA256Fingerprint: identity.Fingerprint(r),
			NotBefore:         r.NotBefore.UTC(),
			NotAfter:          r.NotAfter.UTC(),
		})
	}
	return d
}

func formatSerial(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// Text renders the description as aligned "field: value" lines.
func (d *Description) Text() string {
	var b strings.Builder
	row := func(k, v string) { fmt.Fprintf(&b, "%-17s %s\n", k+":", v) }
	row("Subject", orNone(d.Subject))
	row("Issuer", d.Issuer)
	row("URI SAN", orNone(strings.Join(d.URISANs, ", ")))
	row("Serial", d.Serial)
	row("Not before", d.NotBefore.Format(time.RFC3339))
	row("Not after", d.NotAfter.Format(time.RFC3339))
	exp := d.TimeToExpiry
	if d.Expired {
		exp = "EXPIRED"
	}
	row("Time to expiry", exp)
	if d.TimeToRotation != "" {
		row("Time to rotation", d.TimeToRotation+" (at "+d.RenewAt.Format(time.RFC3339)+")")
	}
	row("Chain", fmt.Sprintf("%d certificates", d.ChainLength))
	if d.Root != "" {
		row("Root", d.Root)
	}
	for i, r := range d.TrustBundle {
		k := ""
		if i == 0 {
			k = "Trust bundle"
		}
		fmt.Fprintf(&b, "%-17s %s (sha256 %s…, until %s)\n", k+":", r.Subject, r.SHA256Fingerprint[:16], r.NotAfter.Format(time.RFC3339))
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// JSON renders the description as indented JSON.
func (d *Description) JSON() ([]byte, error) {
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("svid: describe: %w", err)
	}
	return append(out, '\n'), nil
}

// PEM returns the chain as PEM certificates, leaf first, readable by
// `openssl x509 -text` (which prints the first one). Never the key.
func (d *Description) PEM() []byte { return identity.EncodeCertificatesPEM(d.chain) }
