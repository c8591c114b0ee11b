package analyze

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"palisade.dev/palisade/internal/config"
)

func snapshot(t *testing.T, mesh string, docs ...string) *config.Snapshot {
	t.Helper()
	rs, err := config.Decode("in.yaml", []byte(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	config.SortResources(rs)
	mc, err := config.DecodeMesh("mesh.yaml", []byte(mesh))
	if err != nil {
		t.Fatal(err)
	}
	return &config.Snapshot{Version: 1, Mesh: mc, Resources: rs}
}

const (
	strictMesh = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}"
	drDisable  = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: plain, namespace: shop}\nspec:\n  host: cart.shop.svc.cluster.local\n  trafficPolicy:\n    tls: {mode: DISABLE}"
	customAP   = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext, namespace: shop}\nspec:\n  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]"
	opaMesh    = "extensionProviders:\n- name: opa\n  envoyExtAuthzGrpc: {service: opa.local, port: 9191}\n"
	workload   = "apiVersion: palisade.dev/v1alpha1\nkind: Workload\nmetadata: {name: cart, namespace: shop, labels: {app: cart}}\nspec:\n  command: ./cart\n  ports: [{number: 8080}]"
	nsShop     = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}"
	raCart     = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: shop}\nspec:\n  selector: {matchLabels: {app: cart}}\n  jwtRules: [{issuer: https://idp.example.com, jwksUri: https://idp.example.com/keys}]"
	requireJWT = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: require-jwt, namespace: shop}\nspec:\n  action: DENY\n  rules:\n  - from:\n    - source: {notRequestPrincipals: ['*']}"
)

func selectorAP(ns, app string) string {
	return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: sel-" + app + ", namespace: " + ns + "}\nspec:\n  selector: {matchLabels: {app: " + app + "}}\n  rules: [{}]"
}

func codes(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Level.String()+":"+f.Code+":"+strings.Join(f.Resources, "+"))
	}
	return strings.Join(out, ",")
}

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		mesh string
		docs []string
		want string
	}{
		{"clean", opaMesh, []string{customAP, workload, nsShop}, ""},
		{"strict vs disable", "", []string{strictMesh, drDisable}, "Error:PAL0002:DestinationRule shop/plain+PeerAuthentication istio-system/default"},
		{"strict in other namespace does not conflict", "", []string{strings.Replace(strictMesh, "istio-system", "other", 1), drDisable}, ""},
		{"unknown provider", "", []string{customAP}, "Error:PAL0003:AuthorizationPolicy shop/ext"},
		{"selector matches no workload", "", []string{workload, selectorAP("shop", "cart"), selectorAP("shop", "gone")}, "Warning:PAL0004:AuthorizationPolicy shop/sel-gone"},
		{"no workloads: selector check skipped", "", []string{selectorAP("shop", "gone")}, ""},
		{"root namespace selector matches any namespace", "", []string{workload, selectorAP("istio-system", "cart")}, ""},
		{"jwt not required", "", []string{workload, raCart}, "Warning:PAL0005:RequestAuthentication shop/jwt"},
		{"jwt required by deny policy", "", []string{workload, raCart, requireJWT}, ""},
		{"policy in undeclared namespace", "", []string{nsShop, strings.Replace(selectorAP("shpo", "x"), "selector: {matchLabels: {app: x}}\n", "", 1)}, "Warning:PAL0006:AuthorizationPolicy shpo/sel-x"},
		{"legacy kinds", "", []string{"apiVersion: rbac.istio.io/v1alpha1\nkind: ClusterRbacConfig\nmetadata: {name: default}\nspec: {mode: 'ON'}"}, "Info:PAL0007:ClusterRbacConfig default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := codes(Run(snapshot(t, tc.mesh, tc.docs...)))
			if got != tc.want {
				t.Errorf("findings = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFromError(t *testing.T) {
	_, err := config.Decode("bad.yaml", []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: b}\nspec:\n  mtls: {mode: NO}\n  portLevelMtls: {}\n"))
	fs := FromError(err)
	if len(fs) != 1 || fs[0].Code != CodeInvalid || fs[0].Level != Error || fs[0].Resources[0] != "PeerAuthentication b/a" ||
		!strings.HasPrefix(fs[0].Message, "bad.yaml:5: PeerAuthentication b/a: spec.mtls.mode:") {
		t.Fatalf("findings = %+v", fs)
	}
}

// Every scenario decodes and analyzes without errors (with the template
// filled in and the mesh config declaring the OPA provider).
func TestScenarios(t *testing.T) {
	dir := t.TempDir()
	err := filepath.WalkDir("testdata/scenarios", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := strings.NewReplacer("issuer: ISSUER", "issuer: http://127.0.0.1:5556/dex", "jwksUri: JWKS_URI", "jwksUri: http://127.0.0.1:5556/dex/keys").Replace(string(data))
		rel, _ := filepath.Rel("testdata/scenarios", p)
		dst := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		return os.WriteFile(dst, []byte(s), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := config.Load(dir, filepath.Join(dir, "workshop"), filepath.Join(dir, "legacy-rbac"))
	if err != nil {
		t.Fatal(err)
	}
	fs := Run(snap)
	if e, _, _ := Count(fs); e != 0 {
		t.Fatalf("errors: %v", fs)
	}
	if !strings.Contains(codes(fs), "Info:PAL0007") {
		t.Errorf("legacy scenario not flagged for convert: %v", fs)
	}
}

// The scenario copies here are the same files as internal/config's, which
// its TestScenarioCopiesMatch holds to the shared scenarios: a scenario
// added there must be added here too.
func TestScenarioCopiesMatchConfig(t *testing.T) {
	const mine, theirs = "testdata/scenarios", "../config/testdata/scenarios"
	files := func(root string) map[string]string {
		out := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			out[rel] = string(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := files(mine), files(theirs)
	for rel, data := range b {
		if got, ok := a[rel]; !ok {
			t.Errorf("%s/%s has no copy in %s", theirs, rel, mine)
		} else if got != data {
			t.Errorf("%s/%s differs from %s/%s", mine, rel, theirs, rel)
		}
	}
	for rel := range a {
		if _, ok := b[rel]; !ok {
			t.Errorf("%s/%s is not in %s", mine, rel, theirs)
		}
	}
}
