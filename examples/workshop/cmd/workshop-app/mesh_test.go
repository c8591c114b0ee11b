package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"
)

// testMesh runs the three services on real loopback listeners, each with a
// tiny outbound "sidecar": an HTTP forward proxy that routes by Host to the
// service's listener and, as the destination's sidecar would, sets
// X-Forwarded-Client-Cert with the caller's SPIFFE ID.
type testMesh struct {
	addrs map[string]string // mesh host:port -> listener address
	ids   map[string]string // mesh host:port -> SPIFFE ID of the service behind it
}

// startProxy starts the outbound proxy of the workload whose identity is
// self and returns its URL, the value the app gets in $HTTP_PROXY.
func (m *testMesh) startProxy(t *testing.T, self string) string {
	t.Helper()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			host := pr.In.Host
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = m.addrs[host]
			pr.Out.Header.Set(xfccHeader, xfccFor(m.ids[host], self))
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		if _, ok := m.addrs[r.Host]; !ok {
			http.Error(w, "no route to "+r.Host, http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	})
	return "http://" + startServer(t, h)
}

// startServer serves h on a fresh loopback listener with the app's serve
// and returns the address.
func startServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestMeshEndToEnd(t *testing.T) {
	m := &testMesh{addrs: map[string]string{}, ids: map[string]string{
		"productcatalog:5000": catalogID,
		"catalogdetail:3000":  detailID,
	}}
	env := func(proxy string) func(string) string {
		return func(k string) string {
			if k == "HTTP_PROXY" {
				return proxy
			}
			return ""
		}
	}
	start := func(service, self string) string {
		c, err := newClient(env(m.startProxy(t, self)))
		if err != nil {
			t.Fatal(err)
		}
		h, err := newHandler(service, c, discardLog())
		if err != nil {
			t.Fatal(err)
		}
		return startServer(t, h)
	}
	m.addrs["catalogdetail:3000"] = start("catalogdetail", detailID)
	m.addrs["productcatalog:5000"] = start("productcatalog", catalogID)
	frontendAddr := start("frontend", frontendID)

	// The user's browser, without a mesh identity: no redirects followed.
	browser := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	page := func() string {
		t.Helper()
		resp, err := browser.Get("http://" + frontendAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET / = %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}

	body := page()
	for _, want := range []string{
		"<td>Table</td>", "<td>Chair</td>", "ABC.com",
		"frontend was called by: <code>no mesh identity (plaintext)</code>",
		"productcatalog was called by: <code>" + frontendID + "</code>",
		"catalogdetail was called by: <code>" + catalogID + "</code>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}

	resp, err := browser.PostForm("http://"+frontendAddr+"/products", url.Values{"id": {"42"}, "name": {"Bookshelf"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("POST /products = %d Location %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	if body := page(); !strings.Contains(body, "<td>42</td><td>Bookshelf</td>") {
		t.Errorf("added product missing from page:\n%s", body)
	}
}

func TestRun(t *testing.T) {
	t.Run("serves until cancelled", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		env := map[string]string{"PORT": port}
		go func() {
			done <- run(ctx, []string{"catalogdetail"}, func(k string) string { return env[k] }, io.Discard)
		}()

		var resp *http.Response
		for i := 0; i < 100; i++ {
			resp, err = http.Get("http://127.0.0.1:" + port + "/ping")
			if err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			cancel()
			t.Fatalf("ping: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"service": "catalogdetail"`) {
			t.Errorf("ping = %d %s", resp.StatusCode, b)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run = %v, want nil after cancel", err)
		}
	})

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "no args", args: nil, want: "usage"},
		{name: "unknown service", args: []string{"reviews"}, want: "unknown service"},
		{name: "bad proxy", args: []string{"frontend"}, env: map[string]string{"HTTP_PROXY": "::x"}, want: "HTTP_PROXY"},
		{name: "bad port", args: []string{"frontend"}, env: map[string]string{"PORT": "notaport"}, want: "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want error containing %q", err, tt.want)
			}
		})
	}
}
