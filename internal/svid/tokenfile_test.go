package svid

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"palisade.dev/palisade/internal/ca"
)

// A token file is read again for every request, as the kubelet rotates a
// projected token: the renewal presents the file's new token, not the one
// read at start (here one-time join tokens stand in for the rotating
// service-account tokens, so a stale one would be refused as used).
func TestAgentRereadsTokenFile(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	logs := &logBuffer{}
	cfg := c.agentConfig(t, "default", "sleep", logs)
	file := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(file, []byte(cfg.JoinToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TokenFile, cfg.JoinToken = file, ""
	a := runAgent(t, cfg)
	waitReady(t, a)
	first := serial(t, a)

	next, err := c.tokens.Issue("default", "sleep", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	waitWaiting(t, clock)
	clock.Set(a.RenewAt())
	eventually(t, "renewal", func() bool { return serial(t, a) != first })
	if _, err := c.tokens.Redeem(next); !errors.Is(err, ca.ErrTokenUsed) {
		t.Errorf("the file's new token was not presented on renewal: redeem says %v", err)
	}
	if logs.Contains(next) {
		t.Error("the token was logged")
	}
}

// A missing token file fails the request, and says which file.
func TestAgentTokenFileMissing(t *testing.T) {
	clock := newFakeClock()
	c := startCA(t, clock, ca.Options{})
	cfg := c.agentConfig(t, "default", "sleep", &logBuffer{})
	cfg.TokenFile, cfg.JoinToken = filepath.Join(t.TempDir(), "absent"), ""
	a, err := NewAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = a.renew(t.Context())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("renew with no token file: %v", err)
	}
}
