package meshtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Load sends one request at a time, every interval, until Stop: a steady
// trickle of traffic that a test can keep running while something changes
// underneath (a certificate turning over, a root rotating).
type Load struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	sent, ok int
	failures []string
}

// LoadCheck judges one answer: nil when it is what the test expects.
type LoadCheck func(status int, body []byte) error

// StartLoad sends a request made by newReq through c every interval;
// an error, or an answer check refuses, is a failure. A nil check accepts
// any 200. The load is stopped when the test ends, if Stop was not called.
func StartLoad(t testing.TB, c *http.Client, every time.Duration, newReq func() (*http.Request, error), check LoadCheck) *Load {
	t.Helper()
	if check == nil {
		check = func(status int, _ []byte) error {
			if status != http.StatusOK {
				return fmt.Errorf("status %d", status)
			}
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			err := l.once(ctx, c, newReq, check)
			if ctx.Err() != nil {
				return // stopped mid-request: not the mesh's failure
			}
			l.mu.Lock()
			l.sent++
			if err != nil {
				l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
			} else {
				l.ok++
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *Load) once(ctx context.Context, c *http.Client, newReq func() (*http.Request, error), check LoadCheck) error {
	req, err := newReq()
	if err != nil {
		return err
	}
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if err := check(resp.StatusCode, body); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	return nil
}

// LoadResult is what a load saw.
type LoadResult struct {
	Sent, OK int
	Failures []string // each with its time
}

// Snapshot is the result so far.
func (l *Load) Snapshot() LoadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LoadResult{Sent: l.sent, OK: l.ok, Failures: append([]string(nil), l.failures...)}
}

// Stop ends the load, waits for the request in flight, and returns the
// result.
func (l *Load) Stop() LoadResult {
	l.cancel()
	<-l.done
	return l.Snapshot()
}
