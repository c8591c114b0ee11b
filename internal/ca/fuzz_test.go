package ca

import (
	"encoding/pem"
	"testing"
)

// FuzzParseCSR feeds outside input (the csr field of a CreateCertificate
// call) to the CSR parser: it must never panic, and whatever it accepts must
// carry a valid self-signature and an accepted key.
func FuzzParseCSR(f *testing.F) {
	_, csr := newCSR(f, []string{"spiffe://cluster.local/ns/a/sa/b"}, "x.example")
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw}))
	f.Add(csr.Raw)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseCSR(data)
		if err != nil {
			return
		}
		if err := got.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR with a bad signature: %v", err)
		}
		if err := checkLeafKey(got.PublicKey); err != nil {
			t.Fatalf("accepted a CSR with a refused key: %v", err)
		}
	})
}

// FuzzParseKeyPEM: key files come from operators (cacerts); no panics.
func FuzzParseKeyPEM(f *testing.F) {
	k, _ := GenerateKey(KeyEC)
	b, _ := EncodeKeyPEM(k)
	f.Add(b)
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := ParseKeyPEM(data); err == nil && s == nil {
			t.Fatal("nil key without error")
		}
	})
}
