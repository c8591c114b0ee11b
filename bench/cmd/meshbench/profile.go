package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// profileSidecars takes a CPU profile of each sidecar (their opt-in
// --pprof admin endpoint) while fortio drives the keep-alive load through
// them, and returns the top functions of each as Markdown.
func profileSidecars(ctx context.Context, e *env, m *palisadeMesh, header string) (string, error) {
	secs := int(e.d.max.Seconds())
	if secs < 1 {
		secs = 1
	}
	files := map[string]string{"client sidecar": m.ClientAdmin, "server sidecar": m.ServerAdmin}
	var wg sync.WaitGroup
	errs := make(chan error, len(files))
	paths := map[string]string{}
	for name, admin := range files {
		path := filepath.Join(e.work, strings.ReplaceAll(name, " ", "-")+".pprof")
		paths[name] = path
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
			resp, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("%s: profile: %s", name, resp.Status)
				return
			}
			f, err := os.Create(path)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			_, err = io.Copy(f, resp.Body)
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	_, lerr := runFortio(ctx, e, "profile", "http://"+m.HTTP+"/", header,
		[]string{"-qps", "0", "-c", "64", "-t", fmt.Sprintf("%ds", secs)}, nil)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return "", err
		}
	}
	if lerr != nil {
		return "", lerr
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CPU profiles of both Palisade sidecars (no policy) taken through `palisade-proxy --pprof` while fortio drove the 64-connection keep-alive load for %ds; top functions by cumulative time:\n\n", secs)
	for _, name := range []string{"client sidecar", "server sidecar"} {
		var out bytes.Buffer
		if err := run(ctx, e.root, &out, nil, "go", "tool", "pprof", "-top", "-cum", "-nodecount=25", e.bin("palisade-proxy"), paths[name]); err != nil {
			return "", fmt.Errorf("go tool pprof: %v: %s", err, tailOf(out.String()))
		}
		fmt.Fprintf(&b, "<details><summary>%s</summary>\n\n```\n%s```\n\n</details>\n\n", name, out.String())
	}
	return b.String(), nil
}
