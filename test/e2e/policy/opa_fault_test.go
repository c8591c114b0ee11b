package policy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// faultWindow sends GET / as bob (an admin OPA allows) for d and
// reports the statuses it got, and the slowest answer.
func faultWindow(t *testing.T, get func() int, d time.Duration) (codes map[int]int, sent int, slowest time.Duration) {
	t.Helper()
	codes = map[int]int{}
	for end := time.Now().Add(d); time.Now().Before(end); sent++ {
		t0 := time.Now()
		codes[get()]++
		slowest = max(slowest, time.Since(t0))
		time.Sleep(20 * time.Millisecond)
	}
	return codes, sent, slowest
}

// The real OPA behind the workshop's CUSTOM policy is killed: requests
// fail closed with 403 and flag UAEX, as Envoy's ext_authz does without
// failure_mode_allow; when OPA is back they are decided again. With
// failOpen: true on the provider, the same kill lets requests through.
func TestOPAKilledFailsClosedOrOpen(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/policy/echoapp")
	optional := filepath.Join(b.Root, "examples", "workshop", "optional")
	policy := filepath.Join(optional, "policy.rego")
	opa := startOPA(t, b, policy, "127.0.0.1:9191")

	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	copyFile(t, filepath.Join(optional, "productapp-authorizationpolicy.yaml"), dir)
	copyFile(t, filepath.Join(optional, "opa-ext-authz-serviceentry.yaml"), dir)
	writeFile(t, dir, "user-client.yaml", userClientYAML)
	m := meshtest.Up(t, b, dir)
	c := m.Client("clients", "user")
	const front = "http://frontend.workshop:9000"
	as := func(tok string) func() int {
		return func() int { return do(t, c, "GET", front+"/", nil, "Authorization", "Bearer "+tok).Status }
	}
	bob, charlie := as(bobAdmin), as(charlieOther)
	if got := bob(); got != 200 {
		t.Fatalf("bob GET / with OPA up: %d, want 200", got)
	}

	kill := func(p *process) {
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
	}
	kill(opa)
	codes, sent, slowest := faultWindow(t, bob, 2*time.Second)
	t.Logf("OPA down, failOpen false: %d requests, statuses %v, slowest %v", sent, codes, slowest.Round(time.Millisecond))
	if codes[403] != sent {
		t.Errorf("with OPA down, requests got %v, want all %d to fail closed with 403", codes, sent)
	}
	if l := findAccess(t, m, "workshop", "frontend", "GET", "/", 403); l["response_flags"] != "UAEX" || l["authz_decision"] != "CUSTOM-DENY" {
		t.Errorf("a request refused with OPA down is logged %v %v, want UAEX and CUSTOM-DENY", l["response_flags"], l["authz_decision"])
	}

	opa = startOPA(t, b, policy, "127.0.0.1:9191")
	back := time.Now()
	meshtest.Eventually(t, 20*time.Second, "bob allowed once OPA is back", func() error {
		if got := bob(); got != 200 {
			return fmt.Errorf("status %d", got)
		}
		return nil
	})
	t.Logf("decisions again %v after OPA restarted", time.Since(back).Round(time.Millisecond))
	if got := charlie(); got != 403 {
		t.Errorf("charlie GET / with OPA back: %d, want 403 (OPA's own denial)", got)
	}

	mesh, err := os.ReadFile(filepath.Join(dir, "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	open := strings.Replace(string(mesh), "    port: 9191\n", "    port: 9191\n    failOpen: true\n", 1)
	if open == string(mesh) {
		t.Fatal("the workshop's mesh.yaml has no OPA provider on port 9191 to set failOpen on")
	}
	writeFile(t, dir, "mesh.yaml", open)
	// Without OPA, only a proxy that took failOpen lets charlie in.
	kill(opa)
	meshtest.Eventually(t, 20*time.Second, "failOpen applied", func() error {
		if got := charlie(); got != 200 {
			return fmt.Errorf("charlie: %d", got)
		}
		return nil
	})
	codes, sent, slowest = faultWindow(t, bob, 2*time.Second)
	t.Logf("OPA down, failOpen true: %d requests, statuses %v, slowest %v", sent, codes, slowest.Round(time.Millisecond))
	if codes[200] != sent {
		t.Errorf("with failOpen and OPA down, requests got %v, want all %d allowed", codes, sent)
	}
}
