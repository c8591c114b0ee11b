package convert

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authz"
	"palisade.dev/palisade/internal/config"
)

const (
	rbacOn   = "apiVersion: rbac.istio.io/v1alpha1\nkind: ClusterRbacConfig\nmetadata: {name: default}\nspec: {mode: 'ON'}"
	rbacOff  = "apiVersion: rbac.istio.io/v1alpha1\nkind: ClusterRbacConfig\nmetadata: {name: default}\nspec: {mode: 'OFF'}"
	rbacExcl = "apiVersion: rbac.istio.io/v1alpha1\nkind: ClusterRbacConfig\nmetadata: {name: default}\nspec:\n  mode: ON_WITH_EXCLUSION\n  exclusion: {namespaces: [open]}"
	alice    = "cluster.local/ns/shop/sa/alice"
)

func role(rules string) string {
	return "apiVersion: rbac.istio.io/v1alpha1\nkind: ServiceRole\nmetadata: {name: r, namespace: shop}\nspec:\n  rules:\n" + rules
}

func bindTo(subjects string) string {
	return "apiVersion: rbac.istio.io/v1alpha1\nkind: ServiceRoleBinding\nmetadata: {name: b, namespace: shop}\nspec:\n  roleRef: {kind: ServiceRole, name: r}\n  subjects:\n" + subjects
}

// convertDocs converts legacy documents and returns the AuthorizationPolicies.
func convertDocs(t *testing.T, docs ...string) []authz.Policy {
	t.Helper()
	rs, err := config.Decode("legacy.yaml", []byte(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Convert(rs, config.DefaultRootNamespace).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	crs, err := config.Decode("converted.yaml", out)
	if err != nil {
		t.Fatalf("converted output does not decode: %v\n%s", err, out)
	}
	var ps []authz.Policy
	for _, r := range crs {
		if p, ok := r.Spec.(*securityv1beta1.AuthorizationPolicy); ok {
			ps = append(ps, authz.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: p})
		}
	}
	return ps
}

// Converted policies decide as the legacy RBAC did, case by case.
func TestConvertedDecisions(t *testing.T) {
	cart := config.WorkloadRef{Namespace: "shop", Name: "cart", Labels: map[string]string{"app": "cart", "version": "v1"}}
	web := config.WorkloadRef{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}}
	open := config.WorkloadRef{Namespace: "open", Name: "x", Labels: map[string]string{"app": "x"}}
	anyCart := role("  - services: [cart.shop.svc.cluster.local]\n    methods: ['*']\n")
	bindAlice := bindTo("  - user: " + alice + "\n")
	get := func(path string) authz.Request {
		return authz.Request{IsHTTP: true, Principal: alice, Method: "GET", Path: path, DestinationPort: 8080, Headers: http.Header{}}
	}
	with := func(r authz.Request, f func(*authz.Request)) authz.Request { f(&r); return r }
	tests := []struct {
		name  string
		docs  []string
		to    config.WorkloadRef
		req   authz.Request
		allow bool
	}{
		{"ON: a bound user is allowed", []string{rbacOn, anyCart, bindAlice}, cart, get("/"), true},
		{"ON: another user is denied", []string{rbacOn, anyCart, bindAlice}, cart, with(get("/"), func(r *authz.Request) { r.Principal = "cluster.local/ns/shop/sa/bob" }), false},
		{"ON: another service is denied", []string{rbacOn, anyCart, bindAlice}, web, get("/"), false},
		{"OFF: nothing is denied", []string{rbacOff}, web, get("/"), true},
		{"ON_WITH_EXCLUSION: an excluded namespace stays open", []string{rbacExcl}, open, get("/"), true},
		{"ON_WITH_EXCLUSION: another namespace is closed", []string{rbacExcl}, web, get("/"), false},
		{"group subject: member allowed", []string{rbacOn, anyCart, bindTo("  - group: admins\n")}, cart,
			with(get("/"), func(r *authz.Request) {
				r.Auth = &authz.AuthInfo{Principal: "i/s", Claims: map[string]any{"groups": []any{"admins"}}}
			}), true},
		{"group subject: non-member denied", []string{rbacOn, anyCart, bindTo("  - group: admins\n")}, cart,
			with(get("/"), func(r *authz.Request) {
				r.Auth = &authz.AuthInfo{Principal: "i/s", Claims: map[string]any{"groups": []any{"users"}}}
			}), false},
		{"notGroups subject: a member of the excluded group is denied", []string{rbacOn, anyCart, bindTo("  - user: '*'\n    notGroups: [contractors]\n")}, cart,
			with(get("/"), func(r *authz.Request) {
				r.Auth = &authz.AuthInfo{Principal: "i/s", Claims: map[string]any{"groups": []any{"staff", "contractors"}}}
			}), false},
		{"notGroups subject: others are allowed", []string{rbacOn, anyCart, bindTo("  - user: '*'\n    notGroups: [contractors]\n")}, cart,
			with(get("/"), func(r *authz.Request) {
				r.Auth = &authz.AuthInfo{Principal: "i/s", Claims: map[string]any{"groups": []any{"staff"}}}
			}), true},
		// A service name pattern has no selector: its rules are left out
		// rather than granted to the whole namespace.
		{"service pattern: fails closed for a service it named", []string{rbacOn, role("  - services: ['car*']\n    methods: ['*']\n"), bindAlice}, cart, get("/"), false},
		{"service pattern: never opens another service", []string{rbacOn, role("  - services: ['car*']\n    methods: ['*']\n"), bindAlice}, web, get("/"), false},
		{"properties source.namespace: match", []string{rbacOn, anyCart, bindTo("  - properties: {source.namespace: shop}\n")}, cart, get("/"), true},
		{"properties source.namespace: other namespace", []string{rbacOn, anyCart, bindTo("  - properties: {source.namespace: other}\n")}, cart, get("/"), false},
		{"properties source.ip: in block", []string{rbacOn, anyCart, bindTo("  - properties: {source.ip: 10.0.0.0/8}\n")}, cart,
			with(get("/"), func(r *authz.Request) { r.SourceIP = netip.MustParseAddr("10.1.2.3") }), true},
		{"properties source.ip: outside", []string{rbacOn, anyCart, bindTo("  - properties: {source.ip: 10.0.0.0/8}\n")}, cart,
			with(get("/"), func(r *authz.Request) { r.SourceIP = netip.MustParseAddr("192.0.2.1") }), false},
		{"properties request.headers: match", []string{rbacOn, anyCart, bindTo("  - properties: {'request.headers[X-Team]': blue}\n")}, cart,
			with(get("/"), func(r *authz.Request) { r.Headers = http.Header{"X-Team": {"blue"}} }), true},
		{"properties request.headers: missing", []string{rbacOn, anyCart, bindTo("  - properties: {'request.headers[X-Team]': blue}\n")}, cart, get("/"), false},
		{"properties request.auth.claims: match", []string{rbacOn, anyCart, bindTo("  - properties: {'request.auth.claims[role]': admin}\n")}, cart,
			with(get("/"), func(r *authz.Request) {
				r.Auth = &authz.AuthInfo{Principal: "i/s", Claims: map[string]any{"role": "admin"}}
			}), true},
		{"properties request.auth.claims: no token", []string{rbacOn, anyCart, bindTo("  - properties: {'request.auth.claims[role]': admin}\n")}, cart, get("/"), false},
		{"services: short name", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n"), bindAlice}, cart, get("/"), true},
		{"methods: GET allowed", []string{rbacOn, role("  - services: [cart]\n    methods: [GET]\n"), bindAlice}, cart, get("/"), true},
		{"methods: POST denied", []string{rbacOn, role("  - services: [cart]\n    methods: [GET]\n"), bindAlice}, cart, with(get("/"), func(r *authz.Request) { r.Method = "POST" }), false},
		{"paths: prefix match", []string{rbacOn, role("  - services: [cart]\n    paths: ['/api/*']\n"), bindAlice}, cart, get("/api/items"), true},
		{"paths: prefix miss", []string{rbacOn, role("  - services: [cart]\n    paths: ['/api/*']\n"), bindAlice}, cart, get("/admin"), false},
		{"paths: suffix match", []string{rbacOn, role("  - services: [cart]\n    paths: ['*.png']\n"), bindAlice}, cart, get("/img/a.png"), true},
		{"paths: suffix miss", []string{rbacOn, role("  - services: [cart]\n    paths: ['*.png']\n"), bindAlice}, cart, get("/img/a.jpg"), false},
		{"constraint destination.port: match", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: destination.port, values: ['8080']}]\n"), bindAlice}, cart, get("/"), true},
		{"constraint destination.port: other port", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: destination.port, values: ['9090']}]\n"), bindAlice}, cart, get("/"), false},
		{"constraint request.headers: match", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: 'request.headers[X-Env]', values: [prod]}]\n"), bindAlice}, cart,
			with(get("/"), func(r *authz.Request) { r.Headers = http.Header{"X-Env": {"prod"}} }), true},
		{"constraint request.headers: other value", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: 'request.headers[X-Env]', values: [prod]}]\n"), bindAlice}, cart,
			with(get("/"), func(r *authz.Request) { r.Headers = http.Header{"X-Env": {"dev"}} }), false},
		// destination.labels cannot be carried into a rule: the rule is
		// left out, so the converted policy fails closed even for the
		// workload the legacy constraint allowed.
		{"constraint destination.labels: fails closed for a matching workload", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: 'destination.labels[version]', values: [v1]}]\n"), bindAlice}, cart, get("/"), false},
		{"constraint destination.labels: never broader (other version)", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: 'destination.labels[version]', values: [v2]}]\n"), bindAlice}, cart, get("/"), false},
		{"constraint destination.namespace of another namespace matches nothing", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: destination.namespace, values: [other]}]\n"), bindAlice}, cart, get("/"), false},
		{"constraint destination.namespace of its own namespace is implied", []string{rbacOn, role("  - services: [cart]\n    methods: ['*']\n    constraints: [{key: destination.namespace, values: [shop]}]\n"), bindAlice}, cart, get("/"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := convertDocs(t, tt.docs...)
			e, err := authz.Compile(ps, tt.to, authz.Options{RootNamespace: config.DefaultRootNamespace})
			if err != nil {
				t.Fatal(err)
			}
			req := tt.req
			req.Host = tt.to.Name + "." + tt.to.Namespace + ".svc.cluster.local"
			d := e.Evaluate(&req)
			if d.Allowed != tt.allow {
				t.Fatalf("allowed = %v (%s %s), want %v", d.Allowed, d.Reason, d.Policy, tt.allow)
			}
		})
	}
}
