package localmesh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A child that dies before it is ready is reported with the last lines
// of its log, so that the reason is on the user's screen.
func TestExitedBeforeReadyShowsLogTail(t *testing.T) {
	logf, err := openLog(filepath.Join(t.TempDir(), "gw.proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("sh", "-c", "echo line1; echo 'listen 127.0.0.1:80: address already in use'; exit 1")
	p, err := startProcess("ingress gateway", cmd, logf, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = p.waitFor(context.Background(), "ready", 10*time.Second, func() error { return errors.New("not yet") })
	if err == nil {
		t.Fatal("waitFor succeeded for a process that exited")
	}
	for _, want := range []string{"ingress gateway exited before ready", "exit status 1", "gw.proxy.log", "address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// freeAddr's port is below the ephemeral range where the kernel leaves
// room, and free.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	for range 20 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("freeAddr gave %s, not free: %v", addr, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if lo > 20000 && port >= lo {
			t.Fatalf("freeAddr gave port %d, in the ephemeral range from %d", port, lo)
		}
	}
}
