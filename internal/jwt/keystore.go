package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of KeyStoreOptions.
const (
	// DefaultRefreshInterval is Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL.
	DefaultRefreshInterval = 20 * time.Minute
	// DefaultMinRefreshInterval is the least time between two fetches of
	// one key set triggered by requests (unknown kid, retry after failure).
	DefaultMinRefreshInterval = 30 * time.Second
	// DefaultFetchTimeout is JWTRule.timeout's default.
	DefaultFetchTimeout = 5 * time.Second
)

// KeyStoreOptions configures a KeyStore. Zero values take the defaults.
type KeyStoreOptions struct {
	Client             *http.Client     // default: a client with no overall timeout (each fetch has its own)
	Now                func() time.Time // default time.Now
	Logger             *slog.Logger     // default: discard
	RefreshInterval    time.Duration
	MinRefreshInterval time.Duration
	// TokenCacheSize bounds the verified-token cache shared by every
	// Authenticator compiled against the store (Envoy's jwt_cache_size):
	// 0 means DefaultTokenCacheSize, a negative value turns caching off.
	TokenCacheSize int
}

// KeyStore fetches and caches the JSON Web Key Sets of remote issuers,
// shared by every Authenticator compiled against it. It is safe for
// concurrent use.
type KeyStore struct {
	client     *http.Client
	now        func() time.Time
	log        *slog.Logger
	refresh    time.Duration
	minRefresh time.Duration
	tokens     *tokenCache // nil: no caching

	mu   sync.Mutex
	sets map[string]*remoteSet
}

// NewKeyStore returns an empty KeyStore.
func NewKeyStore(o KeyStoreOptions) *KeyStore {
	k := &KeyStore{client: o.Client, now: o.Now, log: o.Logger, refresh: o.RefreshInterval, minRefresh: o.MinRefreshInterval, tokens: newTokenCache(o.TokenCacheSize), sets: map[string]*remoteSet{}}
	if k.client == nil {
		k.client = &http.Client{}
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	if k.refresh <= 0 {
		k.refresh = DefaultRefreshInterval
	}
	if k.minRefresh <= 0 {
		k.minRefresh = DefaultMinRefreshInterval
	}
	return k
}

// KeySetStatus describes one key set, for `palisade proxy-config jwt`.
type KeySetStatus struct {
	Source      string        `json:"source"`           // "jwksUri", "discovery" or "inline"
	Issuer      string        `json:"issuer,omitempty"` // for discovery
	URI         string        `json:"uri,omitempty"`    // the jwks URI, configured or discovered
	Keys        int           `json:"keys"`
	KeyIDs      []string      `json:"kids,omitempty"`
	FetchedAt   time.Time     `json:"fetchedAt,omitzero"`
	Age         time.Duration `json:"age,omitempty"`
	LastAttempt time.Time     `json:"lastAttempt,omitzero"`
	LastError   string        `json:"lastError,omitempty"`
}

// Status describes every remote key set, sorted by source, issuer and URI.
func (k *KeyStore) Status() []KeySetStatus {
	k.mu.Lock()
	sets := make([]*remoteSet, 0, len(k.sets))
	for _, s := range k.sets {
		sets = append(sets, s)
	}
	k.mu.Unlock()
	out := make([]KeySetStatus, 0, len(sets))
	for _, s := range sets {
		out = append(out, s.status())
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Issuer != b.Issuer {
			return a.Issuer < b.Issuer
		}
		return a.URI < b.URI
	})
	return out
}

// Refresh fetches every registered key set now, and reports every failure.
// A failure keeps the set's last good keys.
func (k *KeyStore) Refresh(ctx context.Context) error {
	k.mu.Lock()
	sets := make([]*remoteSet, 0, len(k.sets))
	for _, s := range k.sets {
		sets = append(sets, s)
	}
	k.mu.Unlock()
	var errs []error
	for _, s := range sets {
		if _, err := s.fetch(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run refreshes every key set each RefreshInterval until ctx ends, so keys
// stay fresh on a workload without traffic. It is optional: requests
// refresh stale keys on their own. Failures are logged per key set.
func (k *KeyStore) Run(ctx context.Context) {
	t := time.NewTicker(k.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = k.Refresh(ctx)
		}
	}
}

// keySource is where a rule's keys come from.
type keySource interface {
	// keys returns the current keys, fetching them first if there are none.
	keys(ctx context.Context) (*keyList, error)
	// refetch fetches again after a token named an unknown kid, unless a
	// fetch happened too recently; it returns the keys to retry with, or
	// nil when there is nothing new.
	refetch(ctx context.Context, seen *keyList) *keyList
	status() KeySetStatus
}

// register returns the shared key set for a jwksUri, or for an issuer's
// discovery document when uri is empty.
func (k *KeyStore) register(issuer, uri string, timeout time.Duration) *remoteSet {
	id := "uri " + uri
	if uri == "" {
		id = "discovery " + issuer
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.sets[id]
	if !ok {
		s = &remoteSet{store: k, issuer: issuer, uri: uri, timeout: timeout}
		k.sets[id] = s
	}
	s.mu.Lock()
	if timeout > s.timeout {
		s.timeout = timeout
	}
	s.mu.Unlock()
	return s
}

// remoteSet is one fetched key set.
type remoteSet struct {
	store  *KeyStore
	issuer string // for discovery
	uri    string // configured jwksUri, "" for discovery

	mu          sync.Mutex
	timeout     time.Duration
	cur         *keyList
	lastAttempt time.Time
	lastErr     error
	inflight    *fetchCall
}

type fetchCall struct {
	done chan struct{}
	kl   *keyList
	err  error
}

func (s *remoteSet) keys(ctx context.Context) (*keyList, error) {
	s.mu.Lock()
	cur, now := s.cur, s.store.now()
	switch {
	case cur == nil && s.lastErr != nil && now.Sub(s.lastAttempt) < s.store.minRefresh:
		err := s.lastErr
		s.mu.Unlock()
		return nil, err
	case cur == nil:
		s.mu.Unlock()
		return s.fetch(ctx)
	case now.Sub(cur.fetchedAt) >= s.store.refresh && now.Sub(s.lastAttempt) >= s.store.minRefresh && s.inflight == nil:
		s.mu.Unlock()
		go s.fetch(context.WithoutCancel(ctx)) //nolint:errcheck // logged; last good keys stay
		return cur, nil
	}
	s.mu.Unlock()
	return cur, nil
}

func (s *remoteSet) refetch(ctx context.Context, seen *keyList) *keyList {
	s.mu.Lock()
	if s.cur != seen && s.cur != nil { // someone else already refreshed
		kl := s.cur
		s.mu.Unlock()
		return kl
	}
	if s.inflight == nil && s.store.now().Sub(s.lastAttempt) < s.store.minRefresh {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	kl, err := s.fetch(ctx)
	if err != nil || kl == seen {
		return nil
	}
	return kl
}

// fetch fetches the key set, coalescing concurrent callers into one
// request. On failure the last good keys stay in place and are returned
// with the error (nil if there never were any).
func (s *remoteSet) fetch(ctx context.Context) (*keyList, error) {
	s.mu.Lock()
	if c := s.inflight; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.kl, c.err
		case <-ctx.Done():
			return nil, fmt.Errorf("jwt: fetch jwks: %w", ctx.Err())
		}
	}
	c := &fetchCall{done: make(chan struct{})}
	s.inflight = c
	s.lastAttempt = s.store.now()
	timeout := s.timeout
	s.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	kl, err := s.download(fctx)
	cancel()

	s.mu.Lock()
	if err != nil {
		s.lastErr = err
		c.kl, c.err = s.cur, err
		s.store.log.Warn("jwks fetch failed; keeping the last good keys", "issuer", s.issuer, "uri", s.uri, "have_keys", s.cur != nil, "error", err)
	} else {
		s.lastErr = nil
		s.cur = kl
		c.kl = kl
		if s.cur != nil {
			s.store.log.Info("jwks fetched", "issuer", s.issuer, "uri", kl.uri, "keys", len(kl.keys), "kids", kl.kids)
		}
	}
	s.inflight = nil
	s.mu.Unlock()
	close(c.done)
	return c.kl, c.err
}

func (s *remoteSet) download(ctx context.Context) (*keyList, error) {
	uri := s.uri
	if uri == "" {
		d, err := s.discover(ctx)
		if err != nil {
			return nil, err
		}
		uri = d
	}
	body, err := s.get(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("jwt: fetch jwks %s: %w", uri, err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwt: fetch jwks %s: %w", uri, err)
	}
	return newKeyList(keys, s.store.now(), uri), nil
}

// discover reads jwks_uri from the issuer's OpenID Connect discovery
// document.
func (s *remoteSet) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
	body, err := s.get(ctx, u)
	if err != nil {
		return "", fmt.Errorf("jwt: discover %s: %w", u, err)
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("jwt: discover %s: %w", u, err)
	}
	if err := checkFetchURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("jwt: discover %s: jwks_uri: %w", u, err)
	}
	return doc.JWKSURI, nil
}

func (s *remoteSet) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.store.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("body is more than %d bytes", MaxJWKSSize)
	}
	return b, nil
}

func (s *remoteSet) status() KeySetStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := KeySetStatus{Source: "jwksUri", Issuer: s.issuer, URI: s.uri, LastAttempt: s.lastAttempt}
	if s.uri == "" {
		st.Source = "discovery"
	}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	if kl := s.cur; kl != nil {
		st.URI = kl.uri
		st.Keys = len(kl.keys)
		st.KeyIDs = kl.kids
		st.FetchedAt = kl.fetchedAt
		st.Age = s.store.now().Sub(kl.fetchedAt)
	}
	return st
}

// inlineSet is a rule's inline jwks: fixed at compile time.
type inlineSet struct{ kl *keyList }

func (s inlineSet) keys(context.Context) (*keyList, error)     { return s.kl, nil }
func (s inlineSet) refetch(context.Context, *keyList) *keyList { return nil }
func (s inlineSet) status() KeySetStatus {
	return KeySetStatus{Source: "inline", Keys: len(s.kl.keys), KeyIDs: s.kl.kids}
}

// checkFetchURL accepts absolute http and https URLs only.
func checkFetchURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("%q is not an http or https URL", u)
	}
	if p.Host == "" {
		return fmt.Errorf("%q has no host", u)
	}
	return nil
}
