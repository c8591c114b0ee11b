package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// fillTemplate replaces the placeholders of the workshop's
// RequestAuthentication template with a real issuer and JWKS URL.
func fillTemplate(s string) string {
	return strings.NewReplacer("issuer: ISSUER", "issuer: http://127.0.0.1:5556/dex",
		"jwksUri: JWKS_URI", "jwksUri: http://127.0.0.1:5556/dex/keys").Replace(s)
}

// scenarioDir copies testdata/scenarios into a temporary directory with
// the template filled in, and returns it.
func scenarioDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir("testdata/scenarios", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/scenarios", p)
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(fillTemplate(string(data))), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestScenarioFilesDecode(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*/*.yaml")
	if err != nil || len(files) < 8 {
		t.Fatalf("scenario files: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := Decode(f, []byte(fillTemplate(string(data))))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(rs) == 0 {
				t.Fatal("no resources")
			}
			for _, r := range rs {
				if r.Source.File != f || r.Source.Line < 1 {
					t.Errorf("%s: source %v", r.Key(), r.Source)
				}
			}
		})
	}
}

// The YAML files of the shared scenarios, when the shared checkout is
// present, all have a copy here, the same byte for byte, and every copy
// has its original there (mesh.yaml, Palisade's own, aside): a scenario
// added or changed upstream fails this test until it is copied.
func TestScenarioCopiesMatch(t *testing.T) {
	compareScenarioCopies(t, "../../../shared/scenarios", "testdata/scenarios")
}

func compareScenarioCopies(t *testing.T, shared, copies string) {
	t.Helper()
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared scenarios not available: %v", err)
	}
	yamlFiles := func(root string) map[string]bool {
		out := map[string]bool{}
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || (!strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml")) {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out[rel] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	orig, mine := yamlFiles(shared), yamlFiles(copies)
	if len(orig) == 0 {
		t.Fatalf("no YAML files under %s", shared)
	}
	for rel := range orig {
		if !mine[rel] {
			t.Errorf("shared scenario %s has no copy in %s", rel, copies)
			continue
		}
		a, _ := os.ReadFile(filepath.Join(shared, rel))
		b, _ := os.ReadFile(filepath.Join(copies, rel))
		if string(a) != string(b) {
			t.Errorf("%s differs from the shared scenario", filepath.Join(copies, rel))
		}
	}
	for rel := range mine {
		if !orig[rel] && rel != "mesh.yaml" {
			t.Errorf("%s has no original in %s", filepath.Join(copies, rel), shared)
		}
	}
}

func TestScenarioShapes(t *testing.T) {
	dir := scenarioDir(t)
	snap, err := Load(dir, filepath.Join(dir, "workshop"), filepath.Join(dir, "legacy-rbac"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(k Kind, ns, name string) *Resource {
		for _, r := range snap.Resources {
			if r.Key() == (Key{Kind: k, Namespace: ns, Name: name}) {
				return r
			}
		}
		t.Fatalf("missing %s %s/%s", k, ns, name)
		return nil
	}
	ap := get(KindAuthorizationPolicy, "workshop", "productapp").Spec.(*securityv1beta1.AuthorizationPolicy)
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM || ap.GetProvider().GetName() != "opa-ext-authz-grpc" {
		t.Errorf("productapp policy: action %v provider %q", ap.GetAction(), ap.GetProvider().GetName())
	}
	deny := get(KindAuthorizationPolicy, "istio-ingress", "istio-ingress").Spec.(*securityv1beta1.AuthorizationPolicy)
	if got := deny.GetRules()[0].GetFrom()[0].GetSource().GetNotRequestPrincipals(); len(got) != 1 || got[0] != "*" {
		t.Errorf("ingress deny notRequestPrincipals = %v", got)
	}
	ra := get(KindRequestAuthentication, "istio-ingress", "istio-ingress").Spec.(*securityv1beta1.RequestAuthentication)
	if r := ra.GetJwtRules()[0]; !r.GetForwardOriginalToken() || r.GetAudiences()[0] != "productapp" {
		t.Errorf("jwt rule = %v", r)
	}
	// A ServiceEntry without namespace lands in "default", as with kubectl.
	get(KindServiceEntry, "default", "opa-ext-authz-grpc-local")
	// The cluster-scoped ClusterRbacConfig has no namespace.
	get(KindClusterRbacConfig, "", "default")
	pol := get(KindLegacyPolicy, "with-istio", "default").Spec.(*LegacyPolicy)
	if len(pol.Peers) != 1 || pol.Peers[0].MTLS == nil || pol.Peers[0].MTLS.Mode != "STRICT" {
		t.Errorf("legacy policy peers = %+v", pol.Peers)
	}
	if snap.Mesh.GetExtensionProviders()[0].GetName() != "opa-ext-authz-grpc" {
		t.Errorf("mesh providers = %v", snap.Mesh.GetExtensionProviders())
	}
	for i := 1; i < len(snap.Resources); i++ {
		a, b := snap.Resources[i-1].Key(), snap.Resources[i].Key()
		if a.Kind > b.Kind || a.Kind == b.Kind && (a.Namespace > b.Namespace || a.Namespace == b.Namespace && a.Name >= b.Name) {
			t.Errorf("resources not sorted: %s before %s", a, b)
		}
	}
}
