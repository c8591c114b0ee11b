package svid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
)

// KeyType is the algorithm of the workload key the agent makes for each
// certificate. The key never leaves the proxy: only its CSR does.
type KeyType string

// Workload key types. ECDSA P-256 is the default; RSA is for peers that
// only speak RSA.
const (
	KeyECP256  KeyType = "ec-p256"
	KeyRSA2048 KeyType = "rsa-2048"
	KeyRSA4096 KeyType = "rsa-4096"
)

// ParseKeyType reads a --key-type value; "" means KeyECP256.
func ParseKeyType(s string) (KeyType, error) {
	switch t := KeyType(s); t {
	case "":
		return KeyECP256, nil
	case KeyECP256, KeyRSA2048, KeyRSA4096:
		return t, nil
	}
	return "", fmt.Errorf("svid: key type %q: want %s, %s or %s", s, KeyECP256, KeyRSA2048, KeyRSA4096)
}

func generateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key type %q", t)
}

// publicKeyEqual reports whether a and b are the same public key.
func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
