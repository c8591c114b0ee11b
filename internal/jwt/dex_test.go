package jwt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/peers"
)

// startDex runs Dex on a free 127.0.0.1 port and returns its issuer URL.
func startDex(t *testing.T) string {
	bin := peers.Binary(t, "PALISADE_DEX", "dex", "dex")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tmpl, err := os.ReadFile("testdata/dex-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "dex.yaml")
	if err := os.WriteFile(cfg, bytes.ReplaceAll(tmpl, []byte("ADDR"), []byte(addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", cfg)
	out := &peers.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("dex output:\n  %s", indent(out.String()))
		}
	})
	issuer := "http://" + addr + "/dex"
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return issuer
			}
		}
		select {
		case <-exited:
			t.Fatalf("dex exited before it was ready:\n  %s", indent(out.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dex not ready at %s after 60s", issuer)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dexToken gets an ID token with the password grant.
func dexToken(t *testing.T, issuer, user, password string) string {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"}, "username": {user}, "password": {password},
		"scope": {"openid email profile groups"},
	}
	req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("productapp", "productapp-secret")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
		Desc    string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body.IDToken == "" {
		t.Fatalf("token for %s: %s %s %s", user, resp.Status, body.Error, body.Desc)
	}
	return body.IDToken
}

func TestDexEndToEnd(t *testing.T) {
	issuer := startDex(t)
	users := []struct{ email, password string }{
		{"alice@example.com", "alice-password"},
		{"bob@example.com", "bob-password"},
		{"charlie@example.com", "charlie-password"},
	}
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u.email] = dexToken(t, issuer, u.email, u.password)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tokens["alice@example.com"], ".")[0])
	if !strings.Contains(string(hdr), `"RS256"`) {
		t.Fatalf("Dex token header %s is not RS256", hdr)
	}

	configs := []struct {
		name, spec, source string
	}{
		{"discovery from the issuer URL", "jwtRules:\n- issuer: " + issuer + "\n  audiences: [productapp]\n", "discovery"},
		{"jwksUri", "jwtRules:\n- issuer: " + issuer + "\n  audiences: [productapp]\n  jwksUri: " + issuer + "/keys\n  outputClaimToHeaders: [{header: x-email, claim: email}]\n", "jwksUri"},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			keys := NewKeyStore(KeyStoreOptions{})
			a := mustCompile(t, keys, policy(t, "shop", "dex", c.spec))
			for _, u := range users {
				r := bearer(tokens[u.email])
				res, err := a.Authenticate(r)
				if err != nil || res == nil {
					t.Fatalf("%s: %v, %v", u.email, res, err)
				}
				if res.Issuer != issuer || res.Subject == "" || res.Principal != issuer+"/"+res.Subject {
					t.Errorf("%s: principal %q", u.email, res.Principal)
				}
				if res.Claims["email"] != u.email {
					t.Errorf("%s: email claim %v", u.email, res.Claims["email"])
				}
				if len(res.Audiences) != 1 || res.Audiences[0] != "productapp" {
					t.Errorf("%s: aud %q", u.email, res.Audiences)
				}
				if c.source == "jwksUri" && r.Header.Get("X-Email") != u.email {
					t.Errorf("%s: x-email header %q", u.email, r.Header.Get("X-Email"))
				}
			}
			st := keys.Status()
			if len(st) != 1 || st[0].Source != c.source || st[0].URI != issuer+"/keys" || st[0].Keys == 0 || st[0].LastError != "" {
				t.Errorf("key set status = %+v", st)
			}

			// A Dex token with a changed claim no longer verifies.
			parts := strings.Split(tokens["bob@example.com"], ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte("bob@"), []byte("alice@"), 1)) + "." + parts[2]
			_, err := a.Authenticate(bearer(forged))
			asError(t, err, http.StatusUnauthorized, MsgVerificationFails)
		})
	}

	t.Run("audience not allowed", func(t *testing.T) {
		a := mustCompile(t, NewKeyStore(KeyStoreOptions{}), policy(t, "shop", "dex", "jwtRules:\n- issuer: "+issuer+"\n  audiences: [reviews]\n"))
		_, err := a.Authenticate(bearer(tokens["alice@example.com"]))
		asError(t, err, http.StatusForbidden, MsgAudienceNotAllowed)
	})
	t.Run("Dex token at a workload trusting another issuer", func(t *testing.T) {
		a := mustCompile(t, NewKeyStore(KeyStoreOptions{}), policy(t, "shop", "other", "jwtRules:\n- issuer: https://accounts.example.com\n  jwksUri: "+issuer+"/keys\n"))
		_, err := a.Authenticate(bearer(tokens["alice@example.com"]))
		asError(t, err, http.StatusUnauthorized, MsgUnknownIssuer)
	})
}
