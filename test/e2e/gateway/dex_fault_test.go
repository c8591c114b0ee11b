package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

// Dex, the OIDC provider behind the gateway's RequestAuthentication, is
// killed: the tokens it issued keep validating on the keys the gateway
// fetched last. It comes back with new signing keys (its storage is in
// memory), so the old key is gone: a token signed with it is refused once
// the gateway has fetched the new set, and Dex's new tokens pass.
func TestDexKilledKeysOutliveIt(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/policy/echoapp")
	longTokens := func(cfg []byte) []byte {
		return bytes.Replace(cfg, []byte(`idTokens: "3s"`), []byte(`idTokens: "1h"`), 1)
	}
	d := startDexAt(t, peers.FreeAddr(t), longTokens)

	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	optional := filepath.Join(b.Root, "examples", "workshop", "optional")
	ra, err := os.ReadFile(filepath.Join(optional, "ingress-requestauthentication-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "ingress-requestauthentication.yaml", []byte(strings.NewReplacer("JWKS_URI", d.issuer+"/keys", "ISSUER", d.issuer).Replace(string(ra))))
	ap, err := os.ReadFile(filepath.Join(optional, "ingress-authorizationpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "ingress-authorizationpolicy.yaml", ap)
	offset := meshtest.GatewayOffset(t)
	meshtest.Up(t, b, dir, "--gateway-port-offset", fmt.Sprint(offset))
	u := fmt.Sprintf("http://127.0.0.1:%d/", 80+offset)
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	old := d.token(t, "productapp", "alice")
	meshtest.Eventually(t, 30*time.Second, "alice's token accepted with Dex up", func() error {
		if code, body := get(old); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	d.kill(t)
	killed := time.Now()
	sent, slowest := 0, time.Duration(0)
	for time.Since(killed) < 3*time.Second {
		t0 := time.Now()
		if code, body := get(old); code != 200 {
			t.Fatalf("request %d with Dex down: %d %s, want 200 on the last good keys", sent, code, body)
		}
		slowest = max(slowest, time.Since(t0))
		sent++
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("Dex down: %d requests with a token it issued, 0 failed, slowest %v", sent, slowest.Round(time.Millisecond))

	// Back on the same address, with new keys.
	d = startDexAt(t, d.addr, longTokens)
	fresh := d.token(t, "productapp", "alice")
	back := time.Now()
	// The new token names a kid the gateway does not know: it fetches the
	// set again (at most every 30s, Palisade's minimum refresh interval).
	meshtest.Eventually(t, 90*time.Second, "a token from the restarted Dex accepted", func() error {
		if code, body := get(fresh); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	t.Logf("Dex's new keys in use %v after it came back", time.Since(back).Round(time.Millisecond))
	if code, body := get(old); code != 401 || !strings.Contains(body, "Jwks doesn't have key to match kid or alg from Jwt") {
		t.Errorf("a token signed with the key Dex no longer has: %d %q, want 401 and Envoy's answer for a kid the key set lacks", code, body)
	}
}
