package proxy

import (
	"net/http"
	"strings"
	"testing"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"
)

func gatewaySpec(t *testing.T, ns, name, spec string) namedGateway {
	t.Helper()
	g := &networkingv1alpha3.Gateway{}
	if err := yamlProto(spec, g); err != nil {
		t.Fatalf("Gateway %s: %v", name, err)
	}
	return namedGateway{ns, name, g}
}

func vsSpec(t *testing.T, ns, name, spec string) namedVS {
	t.Helper()
	v := &networkingv1alpha3.VirtualService{}
	if err := yamlProto(spec, v); err != nil {
		t.Fatalf("VirtualService %s: %v", name, err)
	}
	return namedVS{ns, name, v}
}

func yamlProto(spec string, m interface{ UnmarshalJSON([]byte) error }) error {
	j, err := yaml.YAMLToJSON([]byte(spec))
	if err != nil {
		return err
	}
	return m.UnmarshalJSON(j)
}

func TestCompileGatewaysBinding(t *testing.T) {
	gws := []namedGateway{
		gatewaySpec(t, "shop", "web", `{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.shop.example.com"]},
			{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["ns1/secure.example.com"], tls: {mode: SIMPLE, credentialName: c}}]}`),
	}
	cases := []struct {
		name string
		vs   namedVS
		// routes bound per port
		want map[uint32]int
	}{
		{"short gateway name in the same namespace", vsSpec(t, "shop", "a", `{hosts: ["a.shop.example.com"], gateways: [web], http: [{route: [{destination: {host: a}}]}]}`), map[uint32]int{80: 1}},
		{"namespace/name from another namespace", vsSpec(t, "other", "a", `{hosts: ["a.shop.example.com"], gateways: [shop/web], http: [{route: [{destination: {host: a}}]}]}`), map[uint32]int{80: 1}},
		{"short name from another namespace does not bind", vsSpec(t, "other", "a", `{hosts: ["a.shop.example.com"], gateways: [web], http: [{route: [{destination: {host: a}}]}]}`), map[uint32]int{}},
		{"no gateways: mesh only", vsSpec(t, "shop", "a", `{hosts: ["a.shop.example.com"], http: [{route: [{destination: {host: a}}]}]}`), map[uint32]int{}},
		{"hosts of no server", vsSpec(t, "shop", "a", `{hosts: ["a.other.example.com"], gateways: [web], http: [{route: [{destination: {host: a}}]}]}`), map[uint32]int{}},
		{"wildcard VirtualService host binds every server", vsSpec(t, "shop", "a", `{hosts: ["*"], gateways: [web], http: [{route: [{destination: {host: a}}]}, {route: [{destination: {host: b}}]}]}`), map[uint32]int{80: 2, 443: 2}},
		{"server host with a namespace prefix", vsSpec(t, "shop", "a", `{hosts: ["secure.example.com"], gateways: [web], http: [{route: [{destination: {host: a}}]}]}`), map[uint32]int{443: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := compileGateways(gws, []namedVS{tc.vs})
			if err != nil {
				t.Fatal(err)
			}
			got := map[uint32]int{}
			for n, gp := range tab.ports {
				for _, s := range gp.servers {
					if len(s.http) > 0 {
						got[n] += len(s.http)
					}
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("routes per port %v, want %v", got, tc.want)
			}
			for n, c := range tc.want {
				if got[n] != c {
					t.Errorf("routes per port %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestCompileGatewaysErrors(t *testing.T) {
	gws := []namedGateway{gatewaySpec(t, "shop", "web", `{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}`)}
	cases := []struct{ name, vs, want string }{
		{"bad regex", `{hosts: ["*"], gateways: [web], http: [{match: [{uri: {regex: "(["}}], route: [{destination: {host: a}}]}]}`, "VirtualService shop/v: spec.http[0]: regex"},
		{"bad header regex", `{hosts: ["*"], gateways: [web], http: [{route: [{destination: {host: a}}]}, {match: [{headers: {x: {regex: "*"}}}], route: [{destination: {host: a}}]}]}`, "spec.http[1]: regex"},
		{"nothing to do", `{hosts: ["*"], gateways: [web], http: [{match: [{uri: {prefix: /}}]}]}`, "no route, redirect or directResponse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileGateways(gws, []namedVS{vsSpec(t, "shop", "v", tc.vs)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q in it", err, tc.want)
			}
		})
	}
}

func TestGatewayServerSelection(t *testing.T) {
	gws := []namedGateway{gatewaySpec(t, "shop", "web", `{servers: [
		{port: {number: 443, name: https-any, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: any}},
		{port: {number: 443, name: https-shop, protocol: HTTPS}, hosts: ["*.example.com"], tls: {mode: SIMPLE, credentialName: wild}},
		{port: {number: 443, name: https-api, protocol: HTTPS}, hosts: ["api.example.com"], tls: {mode: MUTUAL, credentialName: api}},
		{port: {number: 443, name: http-redirect, protocol: HTTP}, hosts: ["plain.example.com"], tls: {httpsRedirect: true}},
		{port: {number: 9443, name: tls, protocol: TLS}, hosts: ["db.example.com"], tls: {mode: PASSTHROUGH}}]}`)}
	tab, err := compileGateways(gws, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		port uint32
		host string
		tls  bool
		want string // credentialName, "passthrough", "redirect" or "" for none
	}{
		{"exact host wins over wildcard", 443, "api.example.com", true, "api"},
		{"wildcard host wins over *", 443, "www.example.com", true, "wild"},
		{"* catches the rest", 443, "other.org", true, "any"},
		{"no SNI", 443, "", true, "any"},
		{"trailing dot and case", 443, "API.example.com.", true, "api"},
		{"plain request picks only plain servers", 443, "plain.example.com", false, "redirect"},
		{"plain request for a TLS server's host", 443, "api.example.com", false, ""},
		{"TLS for the redirect server's host goes to a TLS server", 443, "plain.example.com", true, "wild"},
		{"passthrough server is a TLS server", 9443, "db.example.com", true, "passthrough"},
		{"passthrough host, other SNI", 9443, "x.example.com", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tab.ports[tc.port].serverFor(tc.host, tc.tls)
			got := ""
			switch {
			case s == nil:
			case s.protocol == "TLS":
				got = "passthrough"
				if s.Terminates() {
					t.Error("a PASSTHROUGH server terminates TLS")
				}
			case s.tls.GetHttpsRedirect():
				got = "redirect"
				if s.Terminates() {
					t.Error("a plain HTTP server with httpsRedirect terminates TLS")
				}
			default:
				got = s.tls.GetCredentialName()
			}
			if got != tc.want {
				t.Errorf("server %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGatewayHTTPRouteMatch(t *testing.T) {
	gws := []namedGateway{gatewaySpec(t, "shop", "web", `{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["shop.example.com", "api.example.com"]}]}`)}
	vss := []namedVS{
		vsSpec(t, "shop", "api", `{hosts: ["api.example.com"], gateways: [web], http: [
			{name: v2, match: [{uri: {prefix: /v2/}, headers: {x-canary: {exact: "yes"}}}], rewrite: {uri: /}, route: [{destination: {host: api-v2}}]},
			{name: ci, match: [{uri: {regex: "/Items/[0-9]+"}}, {uri: {exact: /items}}], rewrite: {uri: /catalog}, route: [{destination: {host: items}}]},
			{name: port, match: [{port: 8080}], route: [{destination: {host: other-port}}]},
			{name: nohdr, match: [{withoutHeaders: {x-debug: {}}}], route: [{destination: {host: api, port: {number: 8000}}}]},
			{name: rest, route: [{destination: {host: api-debug.other.svc.cluster.local}}]}]}`),
		vsSpec(t, "shop", "shop", `{hosts: ["shop.example.com"], gateways: [web], http: [
			{match: [{method: {exact: POST}, authority: {prefix: "shop."}}], route: [{destination: {host: writer}}]},
			{match: [{uri: {prefix: /}}], rewrite: {uri: /web}, route: [{destination: {host: web}}]}]}`),
	}
	tab, err := compileGateways(gws, vss)
	if err != nil {
		t.Fatal(err)
	}
	srv := tab.ports[80].serverFor("shop.example.com", false)
	cases := []struct {
		name, method, host, path string
		hdr                      http.Header
		dest                     string // destination host:port, "" for no route
		rewritten                string
	}{
		{"prefix and header", "GET", "api.example.com", "/v2/users", http.Header{"X-Canary": {"yes"}}, "api-v2.shop.svc.cluster.local:0", "/users"},
		{"header value differs", "GET", "api.example.com", "/v2/users", http.Header{"X-Canary": {"no"}}, "api.shop.svc.cluster.local:8000", "/v2/users"},
		{"regex match is anchored and rewrites the whole path", "GET", "api.example.com", "/Items/42", nil, "items.shop.svc.cluster.local:0", "/catalog"},
		{"second match of a route", "GET", "api.example.com", "/items", nil, "items.shop.svc.cluster.local:0", "/catalog"},
		{"regex does not match a longer path", "GET", "api.example.com", "/Items/42/x", nil, "api.shop.svc.cluster.local:8000", "/Items/42/x"},
		{"withoutHeaders excludes", "GET", "api.example.com", "/x", http.Header{"X-Debug": {"1"}}, "api-debug.other.svc.cluster.local:0", "/x"},
		{"method and authority", "POST", "shop.example.com", "/cart", nil, "writer.shop.svc.cluster.local:0", ""},
		{"prefix / rewrite", "GET", "shop.example.com", "/cart", nil, "web.shop.svc.cluster.local:0", "/webcart"},
		{"Host with a port", "GET", "api.example.com:80", "/x", nil, "api.shop.svc.cluster.local:8000", "/x"},
		{"host of no server", "GET", "evil.example.com", "/x", nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(tc.method, "http://"+tc.host+tc.path, nil)
			for k, v := range tc.hdr {
				r.Header[k] = v
			}
			hr, m := srv.route(r, 80)
			got := ""
			if hr != nil {
				got = joinHostPort(hr.dest.host, hr.dest.port)
			}
			if got != tc.dest {
				t.Fatalf("destination %q, want %q", got, tc.dest)
			}
			if hr == nil {
				return
			}
			if rw := hr.route.GetRewrite().GetUri(); rw != "" {
				if p := rewritePath(r.URL.Path, rw, m); p != tc.rewritten {
					t.Errorf("rewritten to %q, want %q", p, tc.rewritten)
				}
			} else if tc.rewritten != "" && tc.rewritten != tc.path {
				t.Errorf("no rewrite, want %q", tc.rewritten)
			}
		})
	}
	r, _ := http.NewRequest("GET", "http://api.example.com/x", nil)
	if hr, _ := srv.route(r, 8080); hr == nil || hr.dest.host != "other-port.shop.svc.cluster.local" {
		t.Errorf("port match: %+v", hr)
	}
}

func TestGatewaySNIRoute(t *testing.T) {
	gws := []namedGateway{gatewaySpec(t, "shop", "web", `{servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: ["*.example.com"], tls: {mode: PASSTHROUGH}}]}`)}
	vss := []namedVS{vsSpec(t, "shop", "db", `{hosts: ["*.example.com"], gateways: [web], tls: [
		{match: [{sniHosts: ["db.example.com"]}], route: [{destination: {host: db, port: {number: 5432}}}]},
		{match: [{sniHosts: ["*.cache.example.com"]}], route: [{destination: {host: cache.infra.svc.cluster.local}}]}]}`)}
	tab, err := compileGateways(gws, vss)
	if err != nil {
		t.Fatal(err)
	}
	srv := tab.ports[443].serverFor("db.example.com", true)
	for sni, want := range map[string]string{
		"db.example.com":       "db.shop.svc.cluster.local:5432",
		"DB.example.com":       "db.shop.svc.cluster.local:5432",
		"eu.cache.example.com": "cache.infra.svc.cluster.local:0",
		"www.example.com":      "",
	} {
		got := ""
		if tr := srv.sniRoute(sni); tr != nil {
			got = joinHostPort(tr.dest.host, tr.dest.port)
		}
		if got != want {
			t.Errorf("SNI %s: %q, want %q", sni, got, want)
		}
	}
}
