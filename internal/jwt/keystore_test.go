package jwt

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// provider is a JWKS server on 127.0.0.1 whose keys, health and discovery
// document the test changes.
type provider struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	keys   []signer
	down   bool
	delay  time.Duration
	hits   atomic.Int64 // JWKS requests
	dHits  atomic.Int64 // discovery requests
	issuer string
}

func newProvider(t testing.TB, keys ...signer) *provider {
	p := &provider{t: t, keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		down, keys, delay := p.down, p.keys, p.delay
		p.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if down {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwksJSON(t, true, keys...)))
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.dHits.Add(1)
		_, _ = w.Write([]byte(`{"issuer":"` + p.issuer + `","jwks_uri":"` + p.srv.URL + `/keys"}`))
	})
	p.srv = httptest.NewServer(mux)
	p.issuer = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) set(down bool, keys ...signer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if keys != nil {
		p.keys = keys
	}
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestKeyRotationAtProvider(t *testing.T) {
	old := newSigner(t, "rsa", "rot-old", "RS256")
	next := newSigner(t, "p256", "rot-new", "ES256")
	prov := newProvider(t, old)
	clk := &clock{now: testNow}
	keys := NewKeyStore(KeyStoreOptions{Now: clk.Now, MinRefreshInterval: 10 * time.Second, RefreshInterval: time.Hour})
	a := mustCompile(t, keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwksUri: "+prov.srv.URL+"/keys\n"))
	fresh := func() map[string]any {
		return claims(testIssuer, map[string]any{"exp": clk.Now().Add(time.Hour).Unix()})
	}
	ok := func(s signer) {
		t.Helper()
		res, err := a.Authenticate(bearer(s.sign(t, fresh(), nil)))
		if err != nil || res == nil {
			t.Fatalf("token of %s: %v, %v; want accepted", s.kid, res, err)
		}
	}
	rejected := func(s signer, msg string) {
		t.Helper()
		_, err := a.Authenticate(bearer(s.sign(t, fresh(), nil)))
		asError(t, err, http.StatusUnauthorized, msg)
	}

	ok(old)
	if n := prov.hits.Load(); n != 1 {
		t.Fatalf("first request fetched %d times, want 1", n)
	}
	ok(old) // cached
	if n := prov.hits.Load(); n != 1 {
		t.Fatalf("cached keys refetched: %d fetches", n)
	}

	// The provider adds a key and signs with it: the unknown kid triggers
	// a refresh, without a restart.
	prov.set(false, old, next)
	clk.advance(11 * time.Second)
	ok(next)
	if n := prov.hits.Load(); n != 2 {
		t.Fatalf("unknown kid: %d fetches, want 2", n)
	}

	// The provider drops the old key; after a refresh it is rejected.
	prov.set(false, next)
	clk.advance(11 * time.Second)
	if err := keys.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rejected(old, MsgKidAlgMismatch)
	ok(next)

	// Unknown kids do not hammer the provider: within the minimum
	// interval no fetch happens.
	before := prov.hits.Load()
	for i := 0; i < 5; i++ {
		rejected(newSigner(t, "rsa", "random-kid", "RS256"), MsgKidAlgMismatch)
	}
	if n := prov.hits.Load() - before; n > 1 {
		t.Fatalf("unknown kids caused %d fetches within the rate limit, want at most 1", n)
	}

	// The provider goes down: the last good keys keep working, and the
	// status reports the failure.
	prov.set(true)
	clk.advance(2 * time.Hour)
	if err := keys.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh against a down provider reported no error")
	}
	ok(next)
	st := keys.Status()
	if len(st) != 1 || st[0].Keys != 1 || st[0].LastError == "" || st[0].KeyIDs[0] != "rot-new" || st[0].Age < 2*time.Hour {
		t.Fatalf("status = %+v", st)
	}
	if !strings.Contains(st[0].LastError, "503") {
		t.Errorf("last error %q does not say what failed", st[0].LastError)
	}

	// Back up: the stale keys are refreshed in the background on use.
	prov.set(false, next, old)
	clk.advance(11 * time.Second) // past the retry interval
	hits := prov.hits.Load()
	ok(next)
	waitFor(t, func() bool { return prov.hits.Load() > hits && keys.Status()[0].Keys == 2 })
	if st := keys.Status()[0]; st.LastError != "" {
		t.Errorf("error kept after a good refresh: %q", st.LastError)
	}
	ok(old)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNeverFetchedRejectsEverything(t *testing.T) {
	s := newSigner(t, "rsa", "k1", "RS256")
	prov := newProvider(t, s)
	prov.set(true)
	clk := &clock{now: testNow}
	keys := NewKeyStore(KeyStoreOptions{Now: clk.Now, MinRefreshInterval: 10 * time.Second})
	a := mustCompile(t, keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwksUri: "+prov.srv.URL+"/keys\n"))
	for i := 0; i < 3; i++ {
		_, err := a.Authenticate(bearer(s.sign(t, claims(testIssuer, nil), nil)))
		asError(t, err, http.StatusUnauthorized, MsgJwksFetchFail)
	}
	if n := prov.hits.Load(); n != 1 {
		t.Errorf("a down provider was asked %d times within the rate limit, want 1", n)
	}
	prov.set(false)
	clk.advance(11 * time.Second)
	if _, err := a.Authenticate(bearer(s.sign(t, claims(testIssuer, nil), nil))); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestDiscovery(t *testing.T) {
	s := newSigner(t, "p256", "d1", "ES256")
	prov := newProvider(t, s)
	keys := NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)})
	a := mustCompile(t, keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+prov.issuer+"\n"))
	res, err := a.Authenticate(bearer(s.sign(t, claims(prov.issuer, nil), nil)))
	if err != nil || res == nil {
		t.Fatalf("got %v, %v", res, err)
	}
	if prov.dHits.Load() != 1 || prov.hits.Load() != 1 {
		t.Errorf("discovery %d, jwks %d fetches; want 1 and 1", prov.dHits.Load(), prov.hits.Load())
	}
	st := a.Rules()[0].KeySet
	if st.Source != "discovery" || st.URI != prov.srv.URL+"/keys" || st.Keys != 1 {
		t.Errorf("rule key set = %+v", st)
	}
}

func TestFetchTimeout(t *testing.T) {
	s := newSigner(t, "rsa", "k1", "RS256")
	prov := newProvider(t, s)
	prov.mu.Lock()
	prov.delay = 2 * time.Second
	prov.mu.Unlock()
	keys := NewKeyStore(KeyStoreOptions{})
	a := mustCompile(t, keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwksUri: "+prov.srv.URL+"/keys\n  timeout: 50ms\n"))
	if got := a.Rules()[0].Timeout; got != "50ms" {
		t.Errorf("timeout = %s", got)
	}
	tok := s.sign(t, claims(testIssuer, map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "iat": nil}), nil)
	_, err := a.Authenticate(bearer(tok))
	e := asError(t, err, http.StatusUnauthorized, MsgJwksFetchFail)
	if !strings.Contains(e.Reason, "deadline") {
		t.Errorf("reason %q does not say the fetch timed out", e.Reason)
	}
}

func TestConcurrentFirstFetchCoalesced(t *testing.T) {
	s := newSigner(t, "rsa", "k1", "RS256")
	prov := newProvider(t, s)
	prov.mu.Lock()
	prov.delay = 100 * time.Millisecond
	prov.mu.Unlock()
	keys := NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)})
	a := mustCompile(t, keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwksUri: "+prov.srv.URL+"/keys\n"))
	tok := s.sign(t, claims(testIssuer, nil), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Authenticate(bearer(tok)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := prov.hits.Load(); n != 1 {
		t.Errorf("20 concurrent first requests made %d fetches, want 1", n)
	}
}

// Every way a refresh can fail keeps the last good keys.
func TestBadRefreshKeepsLastGoodKeys(t *testing.T) {
	s := newSigner(t, "rsa", "k1", "RS256")
	good := jwksJSON(t, true, s)
	tests := []struct {
		name   string
		status int
		body   string
		errHas string
	}{
		{"server error", http.StatusInternalServerError, "oops", "500"},
		{"not found", http.StatusNotFound, "", "404"},
		{"not JSON", http.StatusOK, "<html>", "parse jwks"},
		{"no keys", http.StatusOK, `{"keys":[]}`, "no usable public key"},
		{"only a symmetric key", http.StatusOK, `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0","kid":"k1"}]}`, "no usable public key"},
		{"encryption key only", http.StatusOK, strings.Replace(good, `"kty"`, `"use":"enc","kty"`, 1), "no usable public key"},
		{"too large", http.StatusOK, `{"keys":[],"pad":"` + strings.Repeat("a", MaxJWKSSize) + `"}`, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			status, body := http.StatusOK, good
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			keys := NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)})
			a := mustCompile(t, keys, policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwksUri: "+srv.URL+"\n"))
			if err := keys.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			status, body = tt.status, tt.body
			mu.Unlock()
			err := keys.Refresh(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("Refresh = %v, want it to mention %q", err, tt.errHas)
			}
			if res, err := a.Authenticate(bearer(s.sign(t, claims(testIssuer, nil), nil))); err != nil || res == nil {
				t.Fatalf("after a bad refresh: %v, %v", res, err)
			}
			if st := keys.Status()[0]; st.Keys != 1 || !strings.Contains(st.LastError, tt.errHas) {
				t.Errorf("status = %+v", st)
			}
		})
	}
}

// A JWKS entry that does not parse is skipped, as Envoy does.
func TestJWKSSkipsBadEntries(t *testing.T) {
	s := newSigner(t, "p256", "ok", "ES256")
	good := jwksJSON(t, true, s)
	mixed := strings.Replace(good, `{"keys":[`, `{"keys":[{"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"},{"kty":"weird"},`, 1)
	a := mustCompile(t, NewKeyStore(KeyStoreOptions{Now: fixedClock(testNow)}), policy(t, "shop", "jwt", "jwtRules:\n- issuer: "+testIssuer+"\n  jwks: '"+mixed+"'\n"))
	if res, err := a.Authenticate(bearer(s.sign(t, claims(testIssuer, nil), nil))); err != nil || res == nil {
		t.Fatalf("got %v, %v", res, err)
	}
	if n := a.Rules()[0].KeySet.Keys; n != 1 {
		t.Errorf("%d keys kept, want 1", n)
	}
}
