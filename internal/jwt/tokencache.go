package jwt

import (
	"container/list"
	"crypto"
	"sync"
	"time"
)

// Defaults of the verified-token cache, Envoy's jwt_cache_config defaults.
const (
	// DefaultTokenCacheSize is jwt_cache_size's default: tokens held.
	DefaultTokenCacheSize = 100
	// MaxCachedTokenSize is jwt_max_token_size's default: a longer token
	// is verified on every request and never held.
	MaxCachedTokenSize = 4096
)

// tokenCache remembers tokens whose signature verified, keyed by the
// token, with the key that verified it, so a repeated token is not
// verified again. It is bounded (least recently used entries go first)
// and holds only verified tokens, so a stream of forged or foreign tokens
// cannot evict the good ones. A hit is not a pass: the caller still checks
// exp, nbf and audiences against the rule and the clock, and that the key
// is still in the issuer's current key set; an entry whose token expired
// is dropped when found. It is safe for concurrent use.
type tokenCache struct {
	size int

	mu    sync.Mutex
	byRaw map[string]*list.Element // of *cachedToken
	lru   list.List                // front: most recently used
}

// cachedToken is a parsed token and the key its signature verified with.
type cachedToken struct {
	t   *token
	pub crypto.PublicKey
}

// newTokenCache returns a cache of size entries, or nil (no caching) when
// size is negative; zero means DefaultTokenCacheSize.
func newTokenCache(size int) *tokenCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultTokenCacheSize
	}
	return &tokenCache{size: size, byRaw: make(map[string]*list.Element, size)}
}

// get returns the cached entry for raw, dropping it instead when the token
// expired (beyond the clock skew) at now.
func (c *tokenCache) get(raw string, now time.Time) (cachedToken, bool) {
	if c == nil || len(raw) > MaxCachedTokenSize {
		return cachedToken{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byRaw[raw]
	if !ok {
		return cachedToken{}, false
	}
	e := el.Value.(*cachedToken)
	if e.t.exp != 0 && now.After(time.Unix(e.t.exp, 0).Add(clockSkew)) {
		c.lru.Remove(el)
		delete(c.byRaw, raw)
		return cachedToken{}, false
	}
	c.lru.MoveToFront(el)
	return *e, true
}

// put remembers that t's signature verified with pub.
func (c *tokenCache) put(t *token, pub crypto.PublicKey) {
	if c == nil || len(t.raw) > MaxCachedTokenSize {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byRaw[t.raw]; ok {
		el.Value = &cachedToken{t: t, pub: pub}
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.size {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.byRaw, old.Value.(*cachedToken).t.raw)
	}
	c.byRaw[t.raw] = c.lru.PushFront(&cachedToken{t: t, pub: pub})
}

// len reports the number of tokens held.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// stillHolds reports whether kl still holds pub as a key that the token's
// kid and alg select, so a cached verification stands. A key that left the
// key set fails this at once.
func stillHolds(kl *keyList, t *token, pub crypto.PublicKey) bool {
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return false
	}
	for _, k := range kl.keys {
		if selects(k, t) && eq.Equal(k.pub) {
			return true
		}
	}
	return false
}
