package dashboard

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/identity"
)

// Certificate is one certificate of a workload's chain.
type Certificate struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	URIs      []string  `json:"uris,omitempty"`
	DNSNames  []string  `json:"dnsNames,omitempty"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	IsCA      bool      `json:"isCA"`
	Serial    string    `json:"serial"`
}

// CertView is the workload's certificate as its sidecar holds it now.
type CertView struct {
	Chain []Certificate `json:"chain"` // leaf first
	// RenewAt is when the sidecar rotates it; RotatesIn and ExpiresIn are
	// from now, in seconds.
	RenewAt   time.Time `json:"renewAt"`
	RotatesIn float64   `json:"rotatesInSeconds"`
	ExpiresIn float64   `json:"expiresInSeconds"`
	Error     string    `json:"error,omitempty"`
}

// WorkloadView is the workload page.
type WorkloadView struct {
	*controlplane.Description
	Connected   bool     `json:"connected"`
	Certificate CertView `json:"certificate"`
	// Evaluation is the order authorization runs the policies that apply:
	// CUSTOM, then DENY, then ALLOW; AUDIT only marks.
	Evaluation []controlplane.PolicySummary `json:"evaluation"`
	Recent     []Record                     `json:"recent"`
}

var actionRank = map[string]int{"CUSTOM": 0, "DENY": 1, "ALLOW": 2, "AUDIT": 3}

// Workload builds the page of one workload ("namespace/name").
func (d *Dashboard) Workload(ctx context.Context, name string) (*WorkloadView, error) {
	key, err := controlplane.ParseWorkloadKey(name)
	if err != nil {
		return nil, err
	}
	desc, err := controlplane.Describe(d.mesh.Snapshot(), d.mesh.Workloads(), key)
	if err != nil {
		return nil, err
	}
	v := &WorkloadView{Description: desc}
	v.Evaluation = append(v.Evaluation, desc.Authorization...)
	sort.SliceStable(v.Evaluation, func(i, j int) bool {
		return actionRank[v.Evaluation[i].Action] < actionRank[v.Evaluation[j].Action]
	})
	var admin string
	for _, p := range d.mesh.Proxies() {
		if p.ID == key.String() {
			v.Connected, admin = p.Connected, p.Admin
		}
	}
	if admin == "" {
		v.Certificate.Error = "the sidecar is not connected"
	} else if err := d.certificate(ctx, admin, &v.Certificate); err != nil {
		v.Certificate.Error = err.Error()
	}
	recent := d.collector.Records(key.String(), time.Time{})
	if len(recent) > 100 {
		recent = recent[len(recent)-100:]
	}
	for i, j := 0, len(recent)-1; i < j; i, j = i+1, j-1 {
		recent[i], recent[j] = recent[j], recent[i]
	}
	v.Recent = recent
	return v, nil
}

// certificate reads the chain from the sidecar's admin listener.
func (d *Dashboard) certificate(ctx context.Context, admin string, out *CertView) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/certs", nil)
	if err != nil {
		return err
	}
	resp, err := d.collector.client.Do(req)
	if err != nil {
		return fmt.Errorf("dashboard: sidecar certificate: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dashboard: sidecar certificate: %s", resp.Status)
	}
	var body struct {
		ChainPEM string    `json:"chainPEM"`
		RenewAt  time.Time `json:"renewAt"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("dashboard: sidecar certificate: %w", err)
	}
	chain, err := identity.ParseCertificatesPEM([]byte(body.ChainPEM))
	if err != nil {
		return fmt.Errorf("dashboard: sidecar certificate: %w", err)
	}
	now := d.now()
	*out = certView(chain, body.RenewAt, now)
	return nil
}

func certView(chain []*x509.Certificate, renewAt, now time.Time) CertView {
	v := CertView{RenewAt: renewAt, RotatesIn: renewAt.Sub(now).Seconds()}
	for _, c := range chain {
		cv := Certificate{Subject: c.Subject.String(), Issuer: c.Issuer.String(), DNSNames: c.DNSNames,
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, IsCA: c.IsCA, Serial: c.SerialNumber.Text(16)}
		for _, u := range c.URIs {
			cv.URIs = append(cv.URIs, u.String())
		}
		v.Chain = append(v.Chain, cv)
	}
	if len(chain) > 0 {
		v.ExpiresIn = chain[0].NotAfter.Sub(now).Seconds()
	}
	return v
}
