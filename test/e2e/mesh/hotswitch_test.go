package mesh_test

import (
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// Editing the mesh's PeerAuthentication from PERMISSIVE to STRICT takes
// effect on every sidecar within about a second of the file write, with
// no restart and without failing one mesh request in flight.
func TestPeerAuthenticationEditAppliesLive(t *testing.T) {
	b := meshtest.Build(t)
	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	writeFile(t, dir, "peerauthentication.yaml", meshPermissive)
	m := meshtest.Up(t, b, dir)
	pidsBefore := meshtest.Descendants(m.PID())
	slices.Sort(pidsBefore)
	addrs := map[string]string{}
	for _, name := range workshopWorkloads {
		addrs[name] = m.Workload("workshop", name).InboundAddress
		if refused, err := plaintextRefused(addrs[name]); refused || err != nil {
			t.Fatalf("%s under PERMISSIVE: plaintext refused %v, %v", name, refused, err)
		}
	}

	// Mesh requests (frontend → productcatalog → catalogdetail, every hop
	// mTLS) keep going during the edit; none may fail.
	client := m.Client("workshop", "frontend")
	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for i := 0; i < 3000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get("http://frontend:9000/")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), "ABC.com") {
					err = fmt.Errorf("%s: %.200s", resp.Status, body)
				}
			}
			if err != nil {
				failed.Add(1)
				failMu.Lock()
				failures = append(failures, err.Error())
				failMu.Unlock()
				continue
			}
			ok.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	meshtest.Eventually(t, 10*time.Second, "mesh requests before the edit", func() error {
		if ok.Load() < 10 {
			return fmt.Errorf("%d requests so far", ok.Load())
		}
		return nil
	})

	// One poller per workload: a plaintext connection every 5 ms until
	// the sidecar resets one.
	type result struct {
		name  string
		after time.Duration
		err   error
	}
	results := make(chan result, len(addrs))
	var start time.Time
	startCh := make(chan struct{})
	for name, addr := range addrs {
		go func() {
			<-startCh
			deadline := start.Add(15 * time.Second)
			for time.Now().Before(deadline) {
				refused, err := plaintextRefused(addr)
				if err != nil {
					results <- result{name: name, err: err}
					return
				}
				if refused {
					results <- result{name: name, after: time.Since(start)}
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			results <- result{name: name, err: fmt.Errorf("still served in plaintext 15s after the edit")}
		}()
	}
	start = time.Now()
	writeFile(t, dir, "peerauthentication.yaml", meshStrict)
	close(startCh)
	var worst time.Duration
	for range addrs {
		r := <-results
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
			continue
		}
		t.Logf("%s refuses plaintext %v after the file write", r.name, r.after.Round(time.Millisecond))
		worst = max(worst, r.after)
	}
	t.Logf("PERMISSIVE→STRICT applied on every sidecar within %v of the file write", worst.Round(time.Millisecond))
	// The goal is one second; the bound leaves room for two loaded cores.
	if worst > 4*time.Second {
		t.Errorf("STRICT took %v to apply everywhere; want about a second", worst)
	}

	// A little more traffic under STRICT, then stop the loop.
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-loopDone
	t.Logf("mesh requests during the edit: %d succeeded, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d mesh requests failed during the edit, first: %v", failed.Load(), failures[0])
	}
	if ok.Load() < 20 {
		t.Errorf("only %d mesh requests ran during the edit", ok.Load())
	}

	// No restart: the same processes serve, now under STRICT.
	pidsAfter := meshtest.Descendants(m.PID())
	slices.Sort(pidsAfter)
	if !reflect.DeepEqual(pidsBefore, pidsAfter) {
		t.Errorf("processes changed across the edit: %v then %v", pidsBefore, pidsAfter)
	}
	needCurl(t)
	for _, name := range workshopWorkloads {
		wantReset(t, m, name)
		if w := m.Workload("workshop", name); w.MTLSMode != "STRICT" || !w.Connected {
			t.Errorf("status: %s in %s, connected %v", name, w.MTLSMode, w.Connected)
		}
	}
}
