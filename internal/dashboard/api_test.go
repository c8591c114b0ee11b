package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/replay"
	"palisade.dev/palisade/internal/telemetry"
)

func TestDecisions(t *testing.T) {
	ra := &config.Resource{Kind: config.KindRequestAuthentication, Meta: config.Meta{Namespace: "shop", Name: "jwt"},
		Spec: &securityv1beta1.RequestAuthentication{JwtRules: []*securityv1beta1.JWTRule{{Issuer: "https://idp.example"}}}}
	d := New(workshopMesh(ra), Options{Now: func() time.Time { return time.Unix(2000, 0) }})
	deny := rec("shop/back", frontID, true, 403, "DENY", 0)
	deny.Path, deny.RequestID, deny.Policy = "/admin/users", "req-1", "DENY shop/deny-admin rule 0"
	jwtDeny := rec("shop/back", "", false, 401, "JWT-DENY", 0)
	jwtDeny.Path, jwtDeny.AuthError = "/orders", "Jwt is expired"
	strictReset := rec("shop/front", "", false, 0, "DENY", 0)
	strictReset.Protocol, strictReset.Policy = telemetry.ProtocolTCP, "PeerAuthentication istio-system/default"
	allow := rec("shop/back", frontID, true, 200, "ALLOW", 0)
	allow.Path = "/orders"
	for i, r := range []*Record{&deny, &jwtDeny, &strictReset, &allow} {
		r.Start = time.Unix(1000+int64(i), 0)
	}
	d.Collector().Add(deny, jwtDeny, strictReset, allow)

	tests := []struct {
		name   string
		filter DecisionFilter
		want   []string // paths or policies, newest first
	}{
		{name: "denials only", filter: DecisionFilter{}, want: []string{"", "/orders", "/admin/users"}},
		{name: "allowed too", filter: DecisionFilter{All: true}, want: []string{"/orders", "", "/orders", "/admin/users"}},
		{name: "by request id", filter: DecisionFilter{Query: "req-1"}, want: []string{"/admin/users"}},
		{name: "by path", filter: DecisionFilter{Query: "/adm"}, want: []string{"/admin/users"}},
		{name: "by policy", filter: DecisionFilter{Query: "istio-system/default"}, want: []string{""}},
		{name: "by source", filter: DecisionFilter{Source: "front-sa"}, want: []string{"/admin/users"}},
		{name: "by destination", filter: DecisionFilter{Destination: "shop/front"}, want: []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range d.Decisions(tc.filter) {
				got = append(got, e.Path)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	links := map[string][2]string{}
	for _, e := range d.Decisions(DecisionFilter{}) {
		links[e.Decision+" "+e.Path] = [2]string{e.PolicyKind, e.PolicyRef}
	}
	for k, want := range map[string][2]string{
		"DENY /admin/users": {"AuthorizationPolicy", "shop/deny-admin"},
		"DENY ":             {"PeerAuthentication", "istio-system/default"},
		"JWT-DENY /orders":  {"RequestAuthentication", "shop/jwt"},
	} {
		if links[k] != want {
			t.Errorf("%s links to %v, want %v", k, links[k], want)
		}
	}
}

func TestRequireToken(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	h := RequireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "inside") }), token)
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(path string, set func(*http.Request)) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if set != nil {
			set(req)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name string
		path string
		set  func(*http.Request)
		want int
	}{
		{name: "no token", path: "/api/dashboard/graph", want: http.StatusUnauthorized},
		{name: "wrong bearer", path: "/api/dashboard/graph", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, want: http.StatusUnauthorized},
		{name: "bearer", path: "/api/dashboard/graph", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, want: http.StatusOK},
		{name: "cookie", path: "/dashboard/", set: func(r *http.Request) { r.AddCookie(&http.Cookie{Name: CookieName, Value: token}) }, want: http.StatusOK},
		{name: "wrong cookie", path: "/dashboard/", set: func(r *http.Request) { r.AddCookie(&http.Cookie{Name: CookieName, Value: "x"}) }, want: http.StatusUnauthorized},
		{name: "login with a wrong token", path: "/dashboard/login?token=x", want: http.StatusUnauthorized},
		{name: "login", path: "/dashboard/login?token=" + token, want: http.StatusFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(tc.path, tc.set)
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusFound {
				var c *http.Cookie
				for _, x := range resp.Cookies() {
					if x.Name == CookieName {
						c = x
					}
				}
				if c == nil || c.Value != token || !c.HttpOnly {
					t.Errorf("login cookie %+v", c)
				}
			}
		})
	}
}

type proxySource []controlplane.ProxyStatus

func (p proxySource) Proxies() []controlplane.ProxyStatus { return p }

// The collector reads a real sidecar admin listener; when the sidecar
// writes faster than it is read, only the oldest records are lost, and
// they are counted.
func TestCollectorFromSidecarAdmin(t *testing.T) {
	ring := telemetry.NewRing(100)
	admin, err := proxy.StartAdmin("127.0.0.1:0", proxy.AdminSources{Records: ring}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	src := proxySource{{ID: "shop/back", Connected: true, Admin: admin.Addr(), ConnectedAt: time.Unix(1, 0)}}
	c := NewCollector(src, 50, time.Hour, slog.New(slog.DiscardHandler))
	add := func(from, to int) {
		for i := from; i < to; i++ {
			ring.Add(&telemetry.Entry{Start: time.Unix(int64(i), 0), BytesSent: int64(i), Direction: telemetry.Inbound, DestinationNamespace: "shop", DestinationWorkload: "back"})
		}
	}
	kept := func() (first, last int64, n int) {
		rs := c.Records("shop/back", time.Time{})
		if len(rs) == 0 {
			return -1, -1, 0
		}
		for i := 1; i < len(rs); i++ {
			if rs[i].BytesSent != rs[i-1].BytesSent+1 {
				t.Fatalf("records out of order or with a gap: %d after %d", rs[i].BytesSent, rs[i-1].BytesSent)
			}
		}
		return rs[0].BytesSent, rs[len(rs)-1].BytesSent, len(rs)
	}
	ctx := context.Background()
	add(0, 30)
	c.CollectOnce(ctx)
	if f, l, n := kept(); f != 0 || l != 29 || n != 30 || c.Dropped() != 0 {
		t.Fatalf("after 30: kept %d..%d (%d), dropped %d", f, l, n, c.Dropped())
	}
	c.CollectOnce(ctx) // nothing new: nothing added twice
	if _, _, n := kept(); n != 30 {
		t.Fatalf("a second read with nothing new: %d kept", n)
	}
	add(30, 230) // 200 more: the sidecar keeps 130..229, 30..129 are lost
	c.CollectOnce(ctx)
	if f, l, n := kept(); f != 180 || l != 229 || n != 50 {
		t.Errorf("after 230: kept %d..%d (%d), want the newest 50, 180..229", f, l, n)
	}
	if c.Dropped() != 100 {
		t.Errorf("dropped %d, want 100", c.Dropped())
	}

	// A record of another workload is not taken for this one's.
	ring.Add(&telemetry.Entry{Start: time.Unix(500, 0), Direction: telemetry.Inbound, DestinationNamespace: "shop", DestinationWorkload: "front"})
	c.CollectOnce(ctx)
	if rs := c.Records("", time.Unix(500, 0)); len(rs) != 0 {
		t.Errorf("kept %d records another workload reported", len(rs))
	}
}

// Proxies that announce the same admin address (each its own loopback)
// are not read: no record would be theirs for sure.
func TestCollectorSkipsSharedAdminAddress(t *testing.T) {
	ring := telemetry.NewRing(10)
	admin, err := proxy.StartAdmin("127.0.0.1:0", proxy.AdminSources{Records: ring}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ring.Add(&telemetry.Entry{Start: time.Unix(1, 0), Direction: telemetry.Inbound, DestinationNamespace: "a", DestinationWorkload: "x"})
	src := proxySource{{ID: "a/x", Connected: true, Admin: admin.Addr()}, {ID: "b/y", Connected: true, Admin: admin.Addr()}}
	c := NewCollector(src, 10, time.Hour, slog.New(slog.DiscardHandler))
	c.CollectOnce(context.Background())
	if rs := c.Records("", time.Time{}); len(rs) != 0 {
		t.Errorf("%d records read from a shared admin address", len(rs))
	}
}

func TestPreviewAPI(t *testing.T) {
	strict := peerAuth("istio-system", "default", securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE)
	d := New(workshopMesh(strict), Options{Now: func() time.Time { return time.Unix(1010, 0) }})
	ok := rec("shop/back", frontID, true, 200, "", 0)
	ok.Method, ok.Path, ok.DestinationPort = "GET", "/orders", 80
	plain := rec("shop/back", "", false, 200, "", 0)
	plain.Method, plain.Path, plain.DestinationPort = "GET", "/orders", 80
	d.Collector().Add(ok, plain)
	h := d.Handler()
	post := func(body string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/dashboard/preview?since=1h", strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantKinds string
		wantText  string
	}{
		{name: "STRICT would reset the plaintext client", body: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`, wantCode: 200, wantKinds: replay.StrictReset},
		{name: "a DENY on the path", body: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-orders, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/orders"]}}]}]
`, wantCode: 200, wantKinds: replay.AllowedToDenied + "," + replay.AllowedToDenied},
		{name: "an unknown field is refused, named", body: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: typo, namespace: shop}
spec: {actoin: DENY}
`, wantCode: 400, wantText: "actoin"},
		{name: "other kinds are not previewed", body: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: shop}
spec: {host: back}
`, wantCode: 400, wantText: "only PeerAuthentication and AuthorizationPolicy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.body)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tc.wantCode, body)
			}
			if tc.wantText != "" && !strings.Contains(body, tc.wantText) {
				t.Errorf("answer lacks %q: %s", tc.wantText, body)
			}
			if code != 200 {
				return
			}
			var res replay.Result
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, c := range res.Changes {
				kinds = append(kinds, c.Kind)
			}
			if strings.Join(kinds, ",") != tc.wantKinds {
				t.Errorf("changes %q, want %q", kinds, tc.wantKinds)
			}
		})
	}
}

func TestRequireAddressHost(t *testing.T) {
	h := RequireAddressHost(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for host, want := range map[string]int{
		"127.0.0.1:15014": http.StatusOK, "[::1]:15014": http.StatusOK, "localhost:15014": http.StatusOK, "10.0.0.4:15014": http.StatusOK,
		"evil.example:15014": http.StatusForbidden, "evil.example": http.StatusForbidden, "127.0.0.1.nip.io:15014": http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/dashboard/records", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %s: %d, want %d", host, w.Code, want)
		}
	}
}
