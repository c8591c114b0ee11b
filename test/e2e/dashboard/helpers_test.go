package dashboard_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/replay"
	"palisade.dev/palisade/test/e2e/meshtest"
)

func runReplay(t *testing.T, m *meshtest.Mesh, args ...string) *replay.Result {
	t.Helper()
	out, err := m.Palisade(append([]string{"authz", "replay", "--state", m.State}, args...)...)
	if err != nil {
		t.Fatalf("authz replay %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var res replay.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("authz replay -o json: %v\n%s", err, out)
	}
	return &res
}

// get sends one GET with an optional request id; want 0 accepts any status.
func get(t *testing.T, c *http.Client, url, requestID string, want int) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	if want != 0 && resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
	return resp.StatusCode
}

// getStatus is the status of a GET, with a bearer token when one is given.
func getStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// sidecarLeaf is the certificate a sidecar serves with, from its admin
// listener.
func sidecarLeaf(t *testing.T, admin string) *x509.Certificate {
	t.Helper()
	var body struct {
		ChainPEM string `json:"chainPEM"`
	}
	getJSON(t, "http://"+admin+"/certs", &body)
	blk, _ := pem.Decode([]byte(body.ChainPEM))
	if blk == nil {
		t.Fatal("sidecar /certs: no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
