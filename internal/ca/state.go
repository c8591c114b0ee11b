package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"palisade.dev/palisade/internal/identity"
)

// The state directory of a self-signed Authority:
//
//	state.json              generations, activation times, last expiry issued
//	roots/<n>/root-cert.pem the generation's root
//	roots/<n>/root-key.pem  its key (0600)
//	roots/<n>/ca-cert.pem   the issuing intermediate (Istio's cacerts names)
//	roots/<n>/ca-key.pem    its key (0600)
//	roots/<n>/cert-chain.pem intermediate then root
//	retired/<n>/            a generation that left the bundle
const (
	stateFile    = "state.json"
	rootsDir     = "roots"
	retiredDir   = "retired"
	fileRootCert = "root-cert.pem"
	fileRootKey  = "root-key.pem"
	fileCACert   = "ca-cert.pem"
	fileCAKey    = "ca-key.pem"
	fileChain    = "cert-chain.pem"
	stateVersion = 1
)

type stateJSON struct {
	Version     int          `json:"version"`
	TrustDomain string       `json:"trustDomain"`
	Roots       []genStateJS `json:"roots"`
}

type genStateJS struct {
	ID                int       `json:"id"`
	Created           time.Time `json:"created"`
	ActiveAt          time.Time `json:"activeAt"`
	MaxIssuedNotAfter time.Time `json:"maxIssuedNotAfter,omitzero"`
}

func genDir(dir string, id int) string { return filepath.Join(dir, rootsDir, strconv.Itoa(id)) }

// writeFileAtomic writes data to path through a temporary file and a rename,
// so a crash leaves either the old or the new content.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// saveGeneration writes a new generation's certificates and keys.
func saveGeneration(dir string, g *generation) error {
	d := genDir(dir, g.id)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	rootKey, err := EncodeKeyPEM(g.rootKey)
	if err != nil {
		return err
	}
	caKey, err := EncodeKeyPEM(g.key)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{fileRootKey, rootKey, 0o600},
		{fileCAKey, caKey, 0o600},
		{fileRootCert, identity.EncodeCertificatesPEM([]*x509.Certificate{g.root}), 0o644},
		{fileCACert, identity.EncodeCertificatesPEM(g.intermediates[:1]), 0o644},
		{fileChain, identity.EncodeCertificatesPEM(append(append([]*x509.Certificate(nil), g.intermediates...), g.root)), 0o644},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(d, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// saveState writes state.json; the caller holds a.mu.
func (a *Authority) saveStateLocked() error {
	st := stateJSON{Version: stateVersion, TrustDomain: a.opts.TrustDomain.Name()}
	for _, g := range a.gens {
		st.Roots = append(st.Roots, genStateJS{ID: g.id, Created: g.created, ActiveAt: g.activeAt, MaxIssuedNotAfter: g.persistedMax})
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(a.dir, stateFile), append(data, '\n'), 0o600)
}

func readState(dir string) (*stateJSON, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st stateJSON
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: unsupported version %d", stateFile, st.Version)
	}
	if len(st.Roots) == 0 {
		return nil, fmt.Errorf("%s: no roots", stateFile)
	}
	return &st, nil
}

// loadGeneration reads one generation's files (an Istio cacerts layout plus
// root-key.pem) and checks they belong together.
func loadGeneration(dir string, s genStateJS) (*generation, error) {
	d := genDir(dir, s.ID)
	m, err := loadCACertsFiles(d)
	if err != nil {
		return nil, err
	}
	rootKeyPEM, err := os.ReadFile(filepath.Join(d, fileRootKey))
	if err != nil {
		return nil, err
	}
	for _, k := range []string{fileRootKey, fileCAKey} {
		if err := checkKeyMode(filepath.Join(d, k)); err != nil {
			return nil, err
		}
	}
	rootKey, err := ParseKeyPEM(rootKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileRootKey, err)
	}
	if !publicKeyEqual(rootKey.Public(), m.root.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", fileRootKey, fileRootCert)
	}
	return &generation{
		id: s.ID, root: m.root, rootKey: rootKey, intermediates: m.intermediates, key: m.key,
		created: s.Created, activeAt: s.ActiveAt, maxNotAfter: s.MaxIssuedNotAfter, persistedMax: s.MaxIssuedNotAfter,
	}, nil
}

// checkKeyMode refuses a key file that others can read, like ssh does.
func checkKeyMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: permissions %04o are too open (want 0600)", path, fi.Mode().Perm())
	}
	return nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

var errNoState = errors.New("no CA state (run `palisade ca init`)")
