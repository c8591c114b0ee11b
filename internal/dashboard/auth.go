package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// CookieName holds the dashboard token in a browser.
const CookieName = "palisade_dashboard"

// RequireToken wraps h so that every request must carry token: as
// "Authorization: Bearer TOKEN", or the cookie that GET
// /dashboard/login?token=TOKEN sets. Anything else gets 401. It guards a
// listener exposed beyond loopback.
func RequireToken(h http.Handler, token string) http.Handler {
	ok := func(got string) bool {
		return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dashboard/login" {
			if !ok(r.URL.Query().Get("token")) {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			http.Redirect(w, r, "/dashboard/", http.StatusFound)
			return
		}
		if b, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && ok(b) {
			h.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(CookieName); err == nil && ok(c.Value) {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	})
}

// RequireAddressHost wraps h so that it answers only requests whose Host
// is an IP address or localhost, as a browser sends them to the admin
// listener's own address. A page of another site that rebinds its DNS
// name to 127.0.0.1 sends its own name, and gets 403: the unauthenticated
// loopback dashboard is not readable from the web.
func RequireAddressHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host != "localhost" && net.ParseIP(host) == nil {
			http.Error(w, "the dashboard answers on its address, not on a name", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// LoadOrCreateToken reads the token in path, or makes one (256 random
// bits, hex) and writes it there, readable only by its owner.
func LoadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < 32 {
			return "", fmt.Errorf("dashboard: token file %s: shorter than 32 characters", path)
		}
		return t, nil
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("dashboard: token file: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("dashboard: token: %w", err)
	}
	t := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dashboard: token file: %w", err)
	}
	return t, nil
}
