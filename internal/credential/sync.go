package credential

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// CACertSuffix names the Secret that holds a credential's client CA apart
// from its key pair, as Istio names it.
const CACertSuffix = "-cacert"

// Material is one credential's files.
type Material struct {
	Cert, Key, CA []byte // PEM; CA may be empty
}

// FromSecrets is the credential of Secret main (nil if absent) with the
// client CA of cacert (nil if absent); ok is false when main holds no key
// pair. An invalid one is an error naming the Secret and key.
func FromSecrets(main, cacert *corev1.Secret) (Material, bool, error) {
	if main == nil {
		return Material{}, false, nil
	}
	ref := main.Namespace + "/" + main.Name
	cert, certKey := pick(main.Data, "tls.crt", "cert")
	key, keyKey := pick(main.Data, "tls.key", "key")
	if cert == nil && key == nil {
		return Material{}, false, nil // not a TLS credential
	}
	if cert == nil || key == nil {
		return Material{}, false, fmt.Errorf("credential: Secret %s: has %s%s but not both a certificate (tls.crt or cert) and a key (tls.key or key)", ref, certKey, keyKey)
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return Material{}, false, fmt.Errorf("credential: Secret %s: %s and %s: %w", ref, certKey, keyKey, err)
	}
	m := Material{Cert: cert, Key: key}
	ca, caKey := pick(main.Data, "ca.crt", "cacert")
	if cacert != nil {
		if c, k := pick(cacert.Data, "ca.crt", "cacert"); c != nil {
			ca, caKey, ref = c, k, cacert.Namespace+"/"+cacert.Name
		}
	}
	if ca != nil {
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			return Material{}, false, fmt.Errorf("credential: Secret %s: %s holds no PEM certificate", ref, caKey)
		}
		m.CA = ca
	}
	return m, true, nil
}

func pick(data map[string][]byte, keys ...string) ([]byte, string) {
	for _, k := range keys {
		if v, ok := data[k]; ok && len(v) > 0 {
			return v, k
		}
	}
	return nil, ""
}

// Sync keeps Dir holding the credentials of the Secrets in Namespace.
type Sync struct {
	Client    kubernetes.Interface
	Namespace string
	Dir       string
	// Names are the credentialNames to deliver (with their -cacert
	// Secrets); no other Secret's key reaches the disk.
	Names []string
	Log   *slog.Logger

	mu      sync.Mutex
	written map[string]Material
}

// Run watches the namespace's Secrets until ctx ends.
func (s *Sync) Run(ctx context.Context) error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if len(s.Names) == 0 {
		return errors.New("credential: no credential names to deliver")
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	s.written = map[string]Material{}
	f := informers.NewSharedInformerFactoryWithOptions(s.Client, 10*time.Minute, informers.WithNamespace(s.Namespace))
	inf := f.Core().V1().Secrets()
	lister := inf.Lister().Secrets(s.Namespace)
	update := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		sec, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		name := strings.TrimSuffix(sec.Name, CACertSuffix)
		if !slices.Contains(s.Names, name) {
			return
		}
		main, _ := lister.Get(name)
		cacert, _ := lister.Get(name + CACertSuffix)
		s.apply(name, main, cacert)
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: update, UpdateFunc: func(_, o any) { update(o) }, DeleteFunc: update,
	}); err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return fmt.Errorf("credential: Secrets of namespace %s: %w", s.Namespace, errors.Join(ctx.Err(), errors.New("cache not synced")))
	}
	s.Log.Info("gateway credentials synced from Secrets", "namespace", s.Namespace, "credentials", s.Names, "dir", s.Dir)
	<-ctx.Done()
	f.Shutdown()
	return nil
}

func (s *Sync) apply(name string, main, cacert *corev1.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok, err := FromSecrets(main, cacert)
	switch {
	case err != nil:
		s.Log.Error("gateway credential refused; the last good one stays", "credential", name, "err", err)
		return
	case !ok:
		if _, had := s.written[name]; had {
			if err := Remove(s.Dir, name); err != nil {
				s.Log.Error("gateway credential not removed", "credential", name, "err", err)
				return
			}
			delete(s.written, name)
			s.Log.Info("gateway credential removed: its Secret is gone", "credential", name)
		}
		return
	}
	if old, had := s.written[name]; had && old.equal(m) {
		return
	}
	if err := Write(s.Dir, name, m); err != nil {
		s.Log.Error("gateway credential not written", "credential", name, "err", err)
		return
	}
	s.written[name] = m
	leaf, _ := tls.X509KeyPair(m.Cert, m.Key)
	attrs := []any{"credential", name, "secret", main.Namespace + "/" + main.Name, "mutual", len(m.CA) > 0}
	if c, err := x509.ParseCertificate(leaf.Certificate[0]); err == nil {
		attrs = append(attrs, "serial", c.SerialNumber.Text(16), "notAfter", c.NotAfter)
	}
	s.Log.Info("gateway credential updated", attrs...)
}

func (m Material) equal(o Material) bool {
	return string(m.Cert) == string(o.Cert) && string(m.Key) == string(o.Key) && string(m.CA) == string(o.CA)
}
