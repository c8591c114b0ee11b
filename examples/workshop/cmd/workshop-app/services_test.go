package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const (
	frontendID = "spiffe://cluster.local/ns/workshop/sa/frontend-sa"
	catalogID  = "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"
	detailID   = "spiffe://cluster.local/ns/workshop/sa/catalogdetail-sa"
)

// xfccFor returns the header value a sidecar of server would set for a call
// from client.
func xfccFor(server, client string) string {
	return "By=" + server + ";Hash=3f0c;Subject=\"\";URI=" + client
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// do sends a request to h and returns the recorded response.
func do(t *testing.T, h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

func TestCatalogDetail(t *testing.T) {
	h := newCatalogDetail()
	tests := []struct {
		name       string
		method     string
		path       string
		xfcc       string
		wantStatus int
		wantCaller string
	}{
		{name: "details with caller", method: "GET", path: "/catalogDetail", xfcc: xfccFor(detailID, catalogID), wantStatus: 200, wantCaller: catalogID},
		{name: "details plaintext", method: "GET", path: "/catalogDetail", wantStatus: 200},
		{name: "ping", method: "GET", path: "/ping", xfcc: xfccFor(detailID, catalogID), wantStatus: 200, wantCaller: catalogID},
		{name: "unknown path", method: "GET", path: "/nope", wantStatus: 404},
		{name: "wrong method", method: "POST", path: "/catalogDetail", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, h, tt.method, tt.path, "", map[string]string{xfccHeader: tt.xfcc})
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus != 200 {
				return
			}
			got := decode[map[string]any](t, w)
			if got["caller"] != tt.wantCaller {
				t.Errorf("caller = %v, want %q", got["caller"], tt.wantCaller)
			}
			if tt.path == "/catalogDetail" {
				d := decode[vendorDetails](t, w)
				if d.Version != "1" || len(d.Vendors) == 0 {
					t.Errorf("details = %+v, want version 1 with vendors", d)
				}
			}
		})
	}
}

// proxyTo returns a client whose proxy is srv, the way $HTTP_PROXY points
// the app at its sidecar.
func proxyTo(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	c, err := newClient(func(k string) string {
		if k == "HTTP_PROXY" {
			return srv.URL
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProductCatalog(t *testing.T) {
	// A stand-in for the sidecar: answers for catalogdetail, or denies.
	deny := false
	var sawHost string
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawHost = r.Host
		if deny {
			http.Error(w, "RBAC: access denied", http.StatusForbidden)
			return
		}
		r.Header.Set(xfccHeader, xfccFor(detailID, catalogID))
		newCatalogDetail().ServeHTTP(w, r)
	}))
	defer sidecar.Close()
	h := newProductCatalog(proxyTo(t, sidecar), catalogDetailURL, discardLog())
	fromFrontend := map[string]string{xfccHeader: xfccFor(catalogID, frontendID)}

	t.Run("list merges vendor details", func(t *testing.T) {
		w := do(t, h, "GET", "/products/", "", fromFrontend)
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		l := decode[productList](t, w)
		if sawHost != "catalogdetail:3000" {
			t.Errorf("proxied Host = %q, want catalogdetail:3000", sawHost)
		}
		want := []product{{"1", "Table"}, {"2", "Chair"}}
		if len(l.Products) != 2 || l.Products[0] != want[0] || l.Products[1] != want[1] {
			t.Errorf("products = %v, want %v", l.Products, want)
		}
		if l.Details == nil || l.Details.Caller != catalogID || len(l.Details.Vendors) == 0 {
			t.Errorf("details = %+v, want vendors seen by %s", l.Details, catalogID)
		}
		if l.Caller != frontendID {
			t.Errorf("caller = %q, want %q", l.Caller, frontendID)
		}
	})

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantName   string
	}{
		{name: "get seeded", method: "GET", path: "/products/1", wantStatus: 200, wantName: "Table"},
		{name: "get missing", method: "GET", path: "/products/99", wantStatus: 404},
		{name: "post new", method: "POST", path: "/products/3", body: `{"name":"Lamp"}`, wantStatus: 201, wantName: "Lamp"},
		{name: "get posted", method: "GET", path: "/products/3", wantStatus: 200, wantName: "Lamp"},
		{name: "post replaces", method: "POST", path: "/products/3", body: `{"name":"Desk lamp"}`, wantStatus: 200, wantName: "Desk lamp"},
		{name: "post non-numeric id", method: "POST", path: "/products/abc", body: `{"name":"X"}`, wantStatus: 400},
		{name: "post empty name", method: "POST", path: "/products/4", body: `{"name":"  "}`, wantStatus: 400},
		{name: "post long name", method: "POST", path: "/products/4", body: `{"name":"` + strings.Repeat("x", 101) + `"}`, wantStatus: 400},
		{name: "post unknown field", method: "POST", path: "/products/4", body: `{"name":"X","price":1}`, wantStatus: 400},
		{name: "post not json", method: "POST", path: "/products/4", body: `name=X`, wantStatus: 400},
		{name: "ping", method: "GET", path: "/ping", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, h, tt.method, tt.path, tt.body, fromFrontend)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			got := decode[map[string]any](t, w)
			if got["caller"] != frontendID {
				t.Errorf("caller = %v, want %q", got["caller"], frontendID)
			}
			if tt.wantName != "" && got["name"] != tt.wantName {
				t.Errorf("name = %v, want %q", got["name"], tt.wantName)
			}
		})
	}

	t.Run("catalogdetail denied", func(t *testing.T) {
		deny = true
		defer func() { deny = false }()
		w := do(t, h, "GET", "/products/", "", nil)
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		l := decode[productList](t, w)
		if l.Details != nil || !strings.Contains(l.DetailsError, "403") || !strings.Contains(l.DetailsError, "RBAC: access denied") {
			t.Errorf("details = %+v, error %q; want the 403 reported", l.Details, l.DetailsError)
		}
		if len(l.Products) < 2 || l.Caller != "" {
			t.Errorf("list = %+v, want products and no caller", l)
		}
	})
}

func TestFrontend(t *testing.T) {
	var posted []string
	fail := false
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "productcatalog:5000" {
			http.Error(w, "no route", http.StatusNotFound)
			return
		}
		if fail {
			http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
			return
		}
		switch {
		case r.Method == "GET" && r.URL.Path == "/products/":
			writeJSON(w, 200, productList{
				Products: []product{{"1", "Table"}, {"7", "<script>x</script>"}},
				Details:  &vendorDetails{Version: "1", Vendors: []string{"ABC.com"}, Caller: catalogID},
				Caller:   frontendID,
			})
		case r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/products/"):
			b, _ := io.ReadAll(r.Body)
			posted = append(posted, r.URL.Path+" "+string(b))
			writeJSON(w, 201, map[string]string{"id": "x"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer sidecar.Close()
	h := newFrontend(proxyTo(t, sidecar), productCatalogURL, discardLog())

	t.Run("index renders products and identities", func(t *testing.T) {
		w := do(t, h, "GET", "/", "", map[string]string{xfccHeader: xfccFor(frontendID, "spiffe://cluster.local/ns/istio-system/sa/ingressgateway")})
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		body := w.Body.String()
		for _, want := range []string{
			"<td>Table</td>", "ABC.com",
			"&lt;script&gt;x&lt;/script&gt;",
			"frontend was called by: <code>spiffe://cluster.local/ns/istio-system/sa/ingressgateway</code>",
			"productcatalog was called by: <code>" + frontendID + "</code>",
			"catalogdetail was called by: <code>" + catalogID + "</code>",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(body, "<script>x") {
			t.Error("product name not escaped")
		}
	})

	t.Run("index without identity", func(t *testing.T) {
		w := do(t, h, "GET", "/", "", nil)
		if !strings.Contains(w.Body.String(), "frontend was called by: <code>no mesh identity (plaintext)</code>") {
			t.Errorf("footer does not say plaintext: %s", w.Body)
		}
	})

	t.Run("index when productcatalog fails", func(t *testing.T) {
		fail = true
		defer func() { fail = false }()
		w := do(t, h, "GET", "/", "", nil)
		if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "503") {
			t.Errorf("status %d body %s; want 502 naming the 503", w.Code, w.Body)
		}
	})

	form := func(id, name string) string { return url.Values{"id": {id}, "name": {name}}.Encode() }
	formHdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantPost   string
	}{
		{name: "add redirects", body: form("5", "Sofa"), wantStatus: 303, wantPost: `/products/5 {"name":"Sofa"}`},
		{name: "add bad id", body: form("5/../x", "Sofa"), wantStatus: 400},
		{name: "add empty name", body: form("6", ""), wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			posted = nil
			w := do(t, h, "POST", "/products", tt.body, formHdr)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == 303 && w.Header().Get("Location") != "/" {
				t.Errorf("Location = %q, want /", w.Header().Get("Location"))
			}
			if tt.wantPost == "" && len(posted) != 0 || tt.wantPost != "" && (len(posted) != 1 || posted[0] != tt.wantPost) {
				t.Errorf("posted %q, want %q", posted, tt.wantPost)
			}
		})
	}

	t.Run("add when productcatalog fails", func(t *testing.T) {
		fail = true
		defer func() { fail = false }()
		w := do(t, h, "POST", "/products", form("8", "Rug"), formHdr)
		if w.Code != http.StatusBadGateway {
			t.Errorf("status = %d, want 502", w.Code)
		}
	})
}

func TestNewClientProxy(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string // proxy host for http://productcatalog:5000, "" for none
		wantErr bool
	}{
		{name: "upper case", env: map[string]string{"HTTP_PROXY": "http://127.0.0.1:15001"}, want: "127.0.0.1:15001"},
		{name: "lower case", env: map[string]string{"http_proxy": "http://127.0.0.1:15002"}, want: "127.0.0.1:15002"},
		{name: "none", env: nil, want: ""},
		{name: "invalid", env: map[string]string{"HTTP_PROXY": "::nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newClient(func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			tr := c.Transport.(*http.Transport)
			var got string
			if tr.Proxy != nil {
				u, err := tr.Proxy(httptest.NewRequest("GET", productCatalogURL+"/products/", nil))
				if err != nil {
					t.Fatal(err)
				}
				got = u.Host
			}
			if got != tt.want {
				t.Errorf("proxy = %q, want %q", got, tt.want)
			}
		})
	}
}
