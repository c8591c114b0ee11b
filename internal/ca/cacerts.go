package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"palisade.dev/palisade/internal/identity"
)

// caMaterial is what an Istio cacerts directory holds, checked for
// consistency.
type caMaterial struct {
	root          *x509.Certificate   // the root the intermediate chains to
	roots         []*x509.Certificate // every root in root-cert.pem
	intermediates []*x509.Certificate // ca-cert first, up to (not including) root
	key           crypto.Signer       // ca-key
}

// loadCACertsFiles reads Istio's plug-in CA layout: ca-cert.pem (the signing
// intermediate), ca-key.pem (its key), root-cert.pem (one or more roots) and
// cert-chain.pem (ca-cert up to the root, as Istio's tooling writes it).
// HasCACerts reports whether dir holds a plug-in CA (its ca-cert.pem), as
// an optional cacerts Secret mounted there does once it is created.
func HasCACerts(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, fileCACert))
	return err == nil
}

func loadCACertsFiles(dir string) (*caMaterial, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	caCertPEM, err := read(fileCACert)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := read(fileCAKey)
	if err != nil {
		return nil, err
	}
	rootPEM, err := read(fileRootCert)
	if err != nil {
		return nil, err
	}
	chainPEM, err := read(fileChain)
	if err != nil {
		return nil, err
	}
	caCerts, err := identity.ParseCertificatesPEM(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileCACert, err)
	}
	caCert := caCerts[0]
	if !caCert.IsCA || caCert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s: not a CA certificate allowed to sign certificates", fileCACert)
	}
	key, err := ParseKeyPEM(caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileCAKey, err)
	}
	if !publicKeyEqual(key.Public(), caCert.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", fileCAKey, fileCACert)
	}
	roots, err := identity.ParseCertificatesPEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileRootCert, err)
	}
	chain, err := identity.ParseCertificatesPEM(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileChain, err)
	}
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	chains, err := caCert.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%s does not chain to %s: %w", fileCACert, fileRootCert, err)
	}
	path := chains[0]
	if len(path) < 2 {
		return nil, errors.New("the signing certificate is itself a root: an intermediate is required")
	}
	return &caMaterial{root: path[len(path)-1], roots: roots, intermediates: path[:len(path)-1], key: key}, nil
}
