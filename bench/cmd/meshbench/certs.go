package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// peerCerts are the files the other proxies use: a CA and one leaf per
// side, ECDSA P-256 with SPIFFE URIs, as Palisade's CA issues them.
type peerCerts struct {
	CA                                string
	ServerCert, ServerKey, ServerPair string // Pair: cert then key, one file (HAProxy)
	ClientCert, ClientKey, ClientPair string
	ServerID, ClientID                string
}

func writePeerCerts(dir string) (*peerCerts, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"bench"}, CommonName: "bench root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	pc := &peerCerts{
		CA:       filepath.Join(dir, "ca.pem"),
		ServerID: "spiffe://cluster.local/ns/bench/sa/backend",
		ClientID: "spiffe://cluster.local/ns/bench/sa/client",
	}
	if err := writePEM(pc.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(name, id string, serial int64) (cert, key, pair string, err error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", "", err
		}
		u, _ := url.Parse(id)
		t := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{"bench"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{u}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, t, caCert, &k.PublicKey, caKey)
		if err != nil {
			return "", "", "", err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", "", "", err
		}
		cert, key, pair = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"), filepath.Join(dir, name+"-pair.pem")
		cp := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		kp := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
		for path, b := range map[string][]byte{cert: cp, key: kp, pair: append(append([]byte{}, cp...), kp...)} {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return "", "", "", err
			}
		}
		return cert, key, pair, nil
	}
	if pc.ServerCert, pc.ServerKey, pc.ServerPair, err = leaf("server", pc.ServerID, 2); err != nil {
		return nil, err
	}
	if pc.ClientCert, pc.ClientKey, pc.ClientPair, err = leaf("client", pc.ClientID, 3); err != nil {
		return nil, err
	}
	return pc, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
