package kube_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/kubeapi"
)

// load is a stream of mesh requests from frontend's app through the whole
// chain (frontend → productcatalog → catalogdetail, every hop mTLS).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	first      string
	stop, done chan struct{}
}

func startLoad(c *http.Client) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			if err := getOK(c, "http://frontend:9000/", "ABC.com"); err != nil {
				if l.failed.Add(1) == 1 {
					l.mu.Lock()
					l.first = err.Error()
					l.mu.Unlock()
				}
			} else {
				l.ok.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

func (l *load) stopAndCheck(t *testing.T) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	close(l.stop)
	<-l.done
	t.Logf("requests in flight: %d succeeded, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 {
		l.mu.Lock()
		t.Errorf("%d requests failed, first: %s", l.failed.Load(), l.first)
		l.mu.Unlock()
	}
	if l.ok.Load() < 10 {
		t.Errorf("only %d requests ran", l.ok.Load())
	}
}

func getOK(c *http.Client, url, want string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, body)
	}
	return nil
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// edit runs `kubectl edit` with a sed script as the editor, as a user
// changing one line would.
func edit(t *testing.T, c *kubeapi.Cluster, obj string, args ...string) {
	t.Helper()
	script := args[len(args)-1]
	cmd := exec.Command(c.KubectlPath(), append([]string{"--kubeconfig=" + c.Kubeconfig, "edit", obj}, args[:len(args)-1]...)...)
	cmd.Env = append(os.Environ(), "KUBE_EDITOR=sed -i -e '"+script+"'", "HOME="+c.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl edit %s: %v: %s", obj, err, out)
	}
}

func applyYAML(t *testing.T, c *kubeapi.Cluster, doc string) {
	t.Helper()
	cmd := exec.Command(c.KubectlPath(), "--kubeconfig="+c.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(doc)
	cmd.Env = append(os.Environ(), "HOME="+c.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v: %s", err, out)
	}
}

func runPalisade(b *meshtest.Bins, args ...string) (string, error) {
	out, err := exec.Command(b.Palisade, args...).CombinedOutput()
	return string(out), err
}
