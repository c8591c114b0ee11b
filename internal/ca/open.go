package ca

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/identity"
)

// Init makes a self-signed root and intermediate in the state directory dir,
// which must not hold a CA yet.
func Init(dir string, opts Options) (*Authority, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("ca: init: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return nil, fmt.Errorf("ca: init: %s already holds a CA", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: init: %w", err)
	}
	// A directory that existed keeps no wider access than the keys in it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: init: %w", err)
	}
	a := newAuthority(opts, dir, "self-signed")
	g, err := a.newGeneration(1, opts.KeyType, opts.Clock())
	if err != nil {
		return nil, fmt.Errorf("ca: init: %w", err)
	}
	if err := saveGeneration(dir, g); err != nil {
		return nil, fmt.Errorf("ca: init: save: %w", err)
	}
	a.gens = []*generation{g}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.saveStateLocked(); err != nil {
		return nil, fmt.Errorf("ca: init: save state: %w", err)
	}
	a.refreshLocked(opts.Clock())
	opts.Logger.Info("ca: made a self-signed root", "dir", dir, "fingerprint", identity.Fingerprint(g.root), "keyType", opts.KeyType)
	return a, nil
}

// Open loads the self-signed CA kept in dir by Init.
func Open(dir string, opts Options) (*Authority, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ca: open %s: %w", dir, errNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: open %s: %w", dir, err)
	}
	if st.TrustDomain != opts.TrustDomain.Name() {
		return nil, fmt.Errorf("ca: open %s: state is for trust domain %q, not %q", dir, st.TrustDomain, opts.TrustDomain.Name())
	}
	a := newAuthority(opts, dir, "self-signed")
	for _, s := range st.Roots {
		g, err := loadGeneration(dir, s)
		if err != nil {
			return nil, fmt.Errorf("ca: open %s: root %d: %w", dir, s.ID, err)
		}
		a.gens = append(a.gens, g)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked(opts.Clock())
	return a, nil
}

// OpenOrInit opens the CA in dir, making it on first start.
func OpenOrInit(dir string, opts Options) (*Authority, error) {
	if _, err := os.Stat(filepath.Join(dir, stateFile)); errors.Is(err, fs.ErrNotExist) {
		return Init(dir, opts)
	}
	return Open(dir, opts)
}

// LoadCACerts makes an Authority from a plug-in intermediate in Istio's
// cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem).
// Every root of root-cert.pem is in the bundle, so an operator rotates roots
// by listing old and new there.
func LoadCACerts(dir string, opts Options) (*Authority, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("ca: load cacerts: %w", err)
	}
	m, err := loadCACertsFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("ca: load cacerts %s: %w", dir, err)
	}
	now := opts.Clock()
	if now.After(m.intermediates[0].NotAfter) {
		return nil, fmt.Errorf("ca: load cacerts %s: %s expired at %s", dir, fileCACert, m.intermediates[0].NotAfter.Format(time.RFC3339))
	}
	a := newAuthority(opts, "", "plug-in")
	a.extraRoots = m.roots
	a.gens = []*generation{{id: 1, root: m.root, intermediates: m.intermediates, key: m.key, activeAt: time.Time{}}}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked(now)
	return a, nil
}

// StateTrustDomain reads the trust domain a state directory was made for.
func StateTrustDomain(dir string) (spiffeid.TrustDomain, error) {
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return spiffeid.TrustDomain{}, fmt.Errorf("ca: open %s: %w", dir, errNoState)
	}
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("ca: open %s: %w", dir, err)
	}
	td, err := spiffeid.TrustDomainFromString(st.TrustDomain)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("ca: open %s: %w", dir, err)
	}
	return td, nil
}
