package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// KeyType is the algorithm of a CA key.
type KeyType string

// Supported CA key types. ECDSA P-256 is the default.
const (
	KeyEC      KeyType = "ec"
	KeyRSA2048 KeyType = "rsa2048"
	KeyRSA4096 KeyType = "rsa4096"
)

// ParseKeyType reads a --key-type value; "" means KeyEC.
func ParseKeyType(s string) (KeyType, error) {
	switch KeyType(s) {
	case "", KeyEC:
		return KeyEC, nil
	case KeyRSA2048, KeyRSA4096:
		return KeyType(s), nil
	}
	return "", fmt.Errorf("ca: parse key type %q: want ec, rsa2048 or rsa4096", s)
}

// GenerateKey makes a new private key of type t.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", KeyEC:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("ca: generate key: unknown key type %q", t)
}

// EncodeKeyPEM returns key as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKeyPEM reads the first private key PEM block of data: PKCS#8,
// PKCS#1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"), as found in
// Istio's ca-key.pem.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("ca: parse key: no private key PEM block")
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // e.g. "EC PARAMETERS" before the key
		}
		if err != nil {
			return nil, fmt.Errorf("ca: parse key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("ca: parse key: %T is not a signing key", k)
		}
		return s, nil
	}
}

// keyTypeOf names the type of an existing key, for status output.
func keyTypeOf(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}
