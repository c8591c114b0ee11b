package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"palisade.dev/palisade/internal/identity"
)

// ErrRotationUnsupported is returned by RotateRoot for a plug-in CA: its
// roots are whatever the operator puts in root-cert.pem.
var ErrRotationUnsupported = errors.New("root rotation needs a self-signed CA (a plug-in CA rotates by replacing its cacerts files)")

// ErrRotationInProgress is returned by RotateRoot while a new root is still
// in its grace period.
var ErrRotationInProgress = errors.New("a new root is already waiting to become the issuer")

// refreshLocked moves the rotation state machine to time now:
//
//  1. the issuer is the newest root whose grace period has ended;
//  2. a root older than the issuer leaves the bundle once every certificate
//     it signed has expired (now >= the latest NotAfter it issued).
//
// Changes are persisted, logged and pushed to subscribers.
func (a *Authority) refreshLocked(now time.Time) {
	issuerIdx := 0
	for i, g := range a.gens {
		if !g.activeAt.After(now) {
			issuerIdx = i
		}
	}
	changed := false
	if a.issuer != a.gens[issuerIdx] {
		if a.issuer != nil {
			a.opts.Logger.Info("ca: new root is now the issuer", "root", a.gens[issuerIdx].id,
				"fingerprint", identity.Fingerprint(a.gens[issuerIdx].root))
		}
		a.issuer = a.gens[issuerIdx]
		changed = true
	}
	var keep []*generation
	for i, g := range a.gens {
		if i < issuerIdx && !now.Before(g.maxNotAfter) {
			a.opts.Logger.Info("ca: old root left the trust bundle: every certificate it signed has expired",
				"root", g.id, "fingerprint", identity.Fingerprint(g.root), "lastExpiry", g.maxNotAfter)
			a.retireLocked(g)
			changed = true
			continue
		}
		keep = append(keep, g)
	}
	a.gens = keep
	if !changed {
		return
	}
	if a.dir != "" {
		if err := a.saveStateLocked(); err != nil {
			a.opts.Logger.Error("ca: persist rotation state", "err", err)
		}
	}
	if a.rebuildBundleLocked() {
		a.notifyLocked()
	}
}

func (a *Authority) retireLocked(g *generation) {
	if a.dir == "" {
		return
	}
	dst := filepath.Join(a.dir, retiredDir, strconv.Itoa(g.id))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err == nil {
		err = os.Rename(genDir(a.dir, g.id), dst)
		if err == nil {
			return
		}
		a.opts.Logger.Error("ca: archive retired root", "root", g.id, "err", err)
	}
}

// RotateRoot makes a new root and intermediate of key type kt ("" keeps the
// configured type). The new root joins the bundle at once and becomes the
// issuer after Options.RotationGrace; the old root stays in the bundle until
// every certificate it signed has expired.
func (a *Authority) RotateRoot(kt KeyType) (RootStatus, error) {
	if a.dir == "" {
		return RootStatus{}, fmt.Errorf("ca: rotate root: %w", ErrRotationUnsupported)
	}
	if kt == "" {
		kt = a.opts.KeyType
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Clock()
	a.refreshLocked(now)
	last := a.gens[len(a.gens)-1]
	if last != a.issuer {
		return RootStatus{}, fmt.Errorf("ca: rotate root: %w (root %d issues from %s)", ErrRotationInProgress, last.id, last.activeAt.Format(time.RFC3339))
	}
	g, err := a.newGeneration(last.id+1, kt, now)
	if err != nil {
		return RootStatus{}, fmt.Errorf("ca: rotate root: %w", err)
	}
	g.activeAt = now.Add(a.opts.RotationGrace)
	if err := saveGeneration(a.dir, g); err != nil {
		return RootStatus{}, fmt.Errorf("ca: rotate root: save: %w", err)
	}
	a.gens = append(a.gens, g)
	if err := a.saveStateLocked(); err != nil {
		a.gens = a.gens[:len(a.gens)-1]
		return RootStatus{}, fmt.Errorf("ca: rotate root: save state: %w", err)
	}
	a.opts.Logger.Info("ca: new root joined the trust bundle", "root", g.id,
		"fingerprint", identity.Fingerprint(g.root), "issuesFrom", g.activeAt)
	if a.rebuildBundleLocked() {
		a.notifyLocked()
	}
	return a.statusOfLocked(g, now), nil
}

// newGeneration makes a self-signed root and an intermediate under it.
func (a *Authority) newGeneration(id int, kt KeyType, now time.Time) (*generation, error) {
	td := a.opts.TrustDomain
	rootKey, err := GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	rt, err := caTemplate(td, fmt.Sprintf("Palisade Root CA %d", id), rootKey.Public(), now, a.opts.RootTTL, 1)
	if err != nil {
		return nil, err
	}
	root, err := createCert(rt, rt, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	key, err := GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	interTTL := min(a.opts.IntermediateTTL, a.opts.RootTTL)
	it, err := caTemplate(td, fmt.Sprintf("Palisade Intermediate CA %d", id), key.Public(), now, interTTL, 0)
	if err != nil {
		return nil, err
	}
	inter, err := createCert(it, root, key.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("intermediate: %w", err)
	}
	return &generation{id: id, root: root, rootKey: rootKey, intermediates: []*x509.Certificate{inter}, key: key, created: now, activeAt: now}, nil
}
