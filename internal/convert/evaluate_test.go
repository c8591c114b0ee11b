package convert

import (
	"net/http"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authz"
	"palisade.dev/palisade/internal/config"
)

// The converted policies decide as the legacy RBAC did: with RBAC on for
// namespace with-istio (ON_WITH_INCLUSION), the test app's service account
// may GET any path of CouchDB, and nothing else in the namespace is
// allowed; namespaces RBAC did not include are untouched.
func TestConvertedLegacyPoliciesDecideAsLegacyRBAC(t *testing.T) {
	out := convertFile(t, "testdata/legacy-policies.yaml")
	rs, err := config.Decode("converted.yaml", out)
	if err != nil {
		t.Fatalf("converted output does not decode: %v", err)
	}
	var ps []authz.Policy
	for _, r := range rs {
		if p, ok := r.Spec.(*securityv1beta1.AuthorizationPolicy); ok {
			ps = append(ps, authz.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: p})
		}
	}
	const testApp = "cluster.local/ns/with-istio/sa/test-app-test-app-chart"
	couchdb := config.WorkloadRef{Namespace: "with-istio", Name: "couchdb", Labels: map[string]string{"app": "couchdb"}}
	other := config.WorkloadRef{Namespace: "with-istio", Name: "web", Labels: map[string]string{"app": "web"}}
	outside := config.WorkloadRef{Namespace: "default", Name: "web", Labels: map[string]string{"app": "web"}}
	tests := []struct {
		name      string
		to        config.WorkloadRef
		principal string
		method    string
		path      string
		allow     bool
	}{
		{"test app GETs couchdb", couchdb, testApp, "GET", "/", true},
		{"test app GETs any couchdb path", couchdb, testApp, "GET", "/_all_dbs/x", true},
		{"test app may not POST to couchdb", couchdb, testApp, "POST", "/db", false},
		{"test app may not DELETE", couchdb, testApp, "DELETE", "/db", false},
		{"another service account may not GET couchdb", couchdb, "cluster.local/ns/with-istio/sa/other", "GET", "/", false},
		{"a plaintext caller may not GET couchdb", couchdb, "", "GET", "/", false},
		{"the test app gets nothing else in the namespace", other, testApp, "GET", "/", false},
		{"a namespace RBAC did not include is untouched", outside, "cluster.local/ns/default/sa/x", "POST", "/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := authz.Compile(ps, tt.to, authz.Options{RootNamespace: config.DefaultRootNamespace})
			if err != nil {
				t.Fatal(err)
			}
			d := e.Evaluate(&authz.Request{IsHTTP: true, Principal: tt.principal, Method: tt.method, Path: tt.path,
				Host: "couchdb.with-istio.svc.cluster.local", DestinationPort: 5984, Headers: http.Header{}})
			if d.Allowed != tt.allow {
				t.Fatalf("allowed = %v (%s %s), want %v", d.Allowed, d.Reason, d.Policy, tt.allow)
			}
		})
	}
}
