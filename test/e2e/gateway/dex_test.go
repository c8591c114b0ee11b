package gateway_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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

// dex is a running Dex: the OIDC provider the gateway trusts.
type dex struct {
	issuer string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startDex runs Dex (testdata/dex.yaml) on a free loopback port until the
// test ends.
func startDex(t *testing.T) *dex {
	t.Helper()
	return startDexAt(t, peers.FreeAddr(t), nil)
}

// startDexAt runs Dex on addr, with testdata/dex.yaml edited by edit
// (if not nil), until the test ends or it is killed.
func startDexAt(t *testing.T, addr string, edit func([]byte) []byte) *dex {
	t.Helper()
	bin := peers.Binary(t, "PALISADE_DEX", "dex", "dex")
	tmpl, err := os.ReadFile("testdata/dex.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmpl = bytes.ReplaceAll(tmpl, []byte("ADDR"), []byte(addr))
	if edit != nil {
		tmpl = edit(tmpl)
	}
	cfg := filepath.Join(t.TempDir(), "dex.yaml")
	if err := os.WriteFile(cfg, tmpl, 0o600); err != nil {
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
			t.Logf("dex output:\n%s", out.String())
		}
	})
	d := &dex{issuer: "http://" + addr + "/dex", addr: addr, cmd: cmd, exited: exited}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(d.issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-exited:
			t.Fatalf("dex exited before it was ready:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dex not ready at %s after 60s", d.issuer)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill ends Dex with SIGKILL and waits for it.
func (d *dex) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
}

// token gets an ID token for user (alice, bob, charlie) from client
// (productapp or billing: the token's audience) with the password grant.
func (d *dex) token(t *testing.T, client, user string) string {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"}, "username": {user + "@example.com"}, "password": {user + "-password"},
		"scope": {"openid email profile groups"},
	}
	req, err := http.NewRequest(http.MethodPost, d.issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(client, client+"-secret")
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
		t.Fatalf("token for %s from client %s: %s %s %s", user, client, resp.Status, body.Error, body.Desc)
	}
	return body.IDToken
}

// claims decodes a token's payload.
func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// tamper changes the payload of a signed token and keeps its signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := bytes.Replace(payload, []byte("alice@"), []byte("bob@"), 1)
	if bytes.Equal(forged, payload) {
		t.Fatalf("token payload has no alice@: %s", payload)
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
}

// resign keeps a Dex token's header (kid included) and claims but signs
// it with a key of our own, which Dex's JWKS does not hold.
func resign(t *testing.T, tok string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	in := parts[0] + "." + parts[1]
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}
