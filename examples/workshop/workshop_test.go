package workshop_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

// decodeDir decodes every *.yaml of dir but mesh.yaml with the loader's own
// decoder, failing on any error.
func decodeDir(t *testing.T, dir string) map[config.Key]*config.Resource {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[config.Key]*config.Resource{}
	for _, f := range files {
		if filepath.Base(f) == "mesh.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := config.Decode(f, data)
		if err != nil {
			t.Errorf("decode %s: %v", f, err)
		}
		for _, r := range rs {
			out[r.Key()] = r
		}
	}
	return out
}

func TestMeshConfig(t *testing.T) {
	data, err := os.ReadFile("mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := config.DecodeMesh("mesh.yaml", data)
	if err != nil {
		t.Fatalf("DecodeMesh: %v", err)
	}
	if mc.GetTrustDomain() != "cluster.local" || mc.GetRootNamespace() != "istio-system" {
		t.Errorf("trustDomain %q rootNamespace %q", mc.GetTrustDomain(), mc.GetRootNamespace())
	}
	ps := mc.GetExtensionProviders()
	if len(ps) != 1 || ps[0].GetName() != "opa-ext-authz-grpc" {
		t.Fatalf("extensionProviders = %v, want one named opa-ext-authz-grpc", ps)
	}
	g := ps[0].GetEnvoyExtAuthzGrpc()
	if g.GetService() != "opa-ext-authz-grpc.local" || g.GetPort() != 9191 {
		t.Errorf("envoyExtAuthzGrpc = %v, want opa-ext-authz-grpc.local:9191", g)
	}
}

func TestDefaultResources(t *testing.T) {
	rs := decodeDir(t, ".")
	for _, k := range []config.Key{
		{Kind: config.KindNamespace, Name: "workshop"},
		{Kind: config.KindNamespace, Name: "istio-system"},
		{Kind: config.KindServiceAccount, Namespace: "workshop", Name: "frontend-sa"},
		{Kind: config.KindServiceAccount, Namespace: "workshop", Name: "productcatalog-sa"},
		{Kind: config.KindServiceAccount, Namespace: "workshop", Name: "catalogdetail-sa"},
		{Kind: config.KindDestinationRule, Namespace: "workshop", Name: "catalogdetail"},
		{Kind: config.KindGateway, Namespace: "workshop", Name: "productapp-gateway"},
		{Kind: config.KindVirtualService, Namespace: "workshop", Name: "productapp"},
	} {
		if rs[k] == nil {
			t.Errorf("missing %s", k)
		}
	}
	for k, r := range rs {
		if r.Kind == config.KindAuthorizationPolicy || r.Kind == config.KindRequestAuthentication || r.Kind == config.KindServiceEntry {
			t.Errorf("%s is loaded by default; it needs an external peer and belongs in optional/", k)
		}
	}

	pa := rs[config.Key{Kind: config.KindPeerAuthentication, Namespace: "istio-system", Name: "default"}]
	if pa == nil {
		t.Fatal("missing the mesh-wide PeerAuthentication istio-system/default")
	}
	spec := pa.Spec.(*securityv1beta1.PeerAuthentication)
	if spec.GetSelector() != nil || spec.GetMtls().GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
		t.Errorf("PeerAuthentication = %v, want STRICT without selector", spec)
	}

	tests := []struct {
		name string
		port uint32
	}{
		{name: "frontend", port: 9000},
		{name: "productcatalog", port: 5000},
		{name: "catalogdetail", port: 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rs[config.Key{Kind: config.KindWorkload, Namespace: "workshop", Name: tt.name}]
			if r == nil {
				t.Fatalf("missing Workload workshop/%s", tt.name)
			}
			if want := map[string]string{"app": tt.name, "version": "v1"}; !reflect.DeepEqual(r.Meta.Labels, want) {
				t.Errorf("labels = %v, want %v", r.Meta.Labels, want)
			}
			w := r.Spec.(*config.WorkloadSpec)
			want := &config.WorkloadSpec{
				ServiceAccount: tt.name + "-sa",
				Ports:          []config.WorkloadPort{{Name: "http", Number: tt.port, Protocol: "HTTP"}},
				Command:        "workshop-app",
				Args:           []string{tt.name},
				Readiness:      &config.Probe{HTTPGet: &config.HTTPGetAction{Path: "/ping"}},
			}
			if !reflect.DeepEqual(w, want) {
				t.Errorf("spec = %+v, want %+v", w, want)
			}
			if rs[config.Key{Kind: config.KindServiceAccount, Namespace: "workshop", Name: w.ServiceAccount}] == nil {
				t.Errorf("service account %s not declared", w.ServiceAccount)
			}
		})
	}
}

// The scenario's files are copied unchanged: users bring their Istio YAML as
// it is.
func TestScenarioFilesUnchanged(t *testing.T) {
	const scenario = "../../../shared/scenarios/workshop"
	if _, err := os.Stat(scenario); err != nil {
		t.Skipf("scenario directory not beside the checkout: %v", err)
	}
	files := map[string]string{
		"catalogdetail-destinationrule.yaml":                   "catalogdetail-destinationrule.yaml",
		"productapp-gateway.yaml":                              "productapp-gateway.yaml",
		"productapp-virtualservice.yaml":                       "productapp-virtualservice.yaml",
		"optional/productapp-authorizationpolicy.yaml":         "productapp-authorizationpolicy.yaml",
		"optional/opa-ext-authz-serviceentry.yaml":             "opa-ext-authz-serviceentry.yaml",
		"optional/ingress-requestauthentication-template.yaml": "ingress-requestauthentication-template.yaml",
		"optional/ingress-authorizationpolicy.yaml":            "ingress-authorizationpolicy.yaml",
		"optional/policy.rego":                                 "policy.rego",
		"optional/policy_test.rego":                            "policy_test.rego",
	}
	for local, orig := range files {
		t.Run(local, func(t *testing.T) {
			a, err := os.ReadFile(local)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(scenario, orig))
			if err != nil {
				t.Fatal(err)
			}
			if string(a) != string(b) {
				t.Errorf("%s differs from the scenario's %s", local, orig)
			}
		})
	}
}

// The optional files decode too (the JWT template needs ISSUER and JWKS_URI
// filled in first, as its README says).
func TestOptionalResources(t *testing.T) {
	files, err := filepath.Glob("optional/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := strings.NewReplacer("jwksUri: JWKS_URI", "jwksUri: https://idp.example.com/jwks",
				"issuer: ISSUER", "issuer: https://idp.example.com").Replace(string(data))
			rs, err := config.Decode(f, []byte(s))
			if err != nil {
				t.Errorf("decode: %v", err)
			}
			if len(rs) == 0 {
				t.Error("no resources")
			}
		})
	}
}
