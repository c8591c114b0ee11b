package convert

import (
	"flag"
	"os"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

func convertFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := config.Decode(path, data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Convert(rs, config.DefaultRootNamespace).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGolden(t *testing.T) {
	got := convertFile(t, "testdata/legacy-policies.yaml")
	const golden = "testdata/legacy-policies.golden.yaml"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run with -update):\n%s", golden, got)
	}
}

// The converted legacy scenario decodes and has the effect the scenario
// describes: STRICT mTLS, only the test app may GET CouchDB, everything
// else in the namespace is denied.
func TestLegacyScenarioSemantics(t *testing.T) {
	rs, err := config.Decode("converted.yaml", convertFile(t, "testdata/legacy-policies.yaml"))
	if err != nil {
		t.Fatalf("converted output does not decode: %v", err)
	}
	var strict, allowNothing, couch bool
	for _, r := range rs {
		if r.Meta.Namespace != "with-istio" {
			t.Errorf("%s outside with-istio", r.Key())
		}
		switch s := r.Spec.(type) {
		case *securityv1beta1.PeerAuthentication:
			strict = s.GetSelector() == nil && s.GetMtls().GetMode() == securityv1beta1.PeerAuthentication_MutualTLS_STRICT
		case *securityv1beta1.AuthorizationPolicy:
			switch {
			case s.GetSelector() == nil && len(s.GetRules()) == 0 && s.GetAction() == securityv1beta1.AuthorizationPolicy_ALLOW:
				allowNothing = true
			case s.GetSelector().GetMatchLabels()["app"] == "couchdb":
				if s.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW || len(s.GetRules()) != 1 {
					t.Fatalf("couchdb policy = %v", s)
				}
				ru := s.GetRules()[0]
				p := ru.GetFrom()[0].GetSource().GetPrincipals()
				m := ru.GetTo()[0].GetOperation().GetMethods()
				couch = len(ru.GetFrom()) == 1 && len(p) == 1 && p[0] == "cluster.local/ns/with-istio/sa/test-app-test-app-chart" &&
					len(m) == 1 && m[0] == "GET" && len(ru.GetWhen()) == 0
			default:
				t.Errorf("unexpected policy %s: %v", r.Key(), s)
			}
		default:
			t.Errorf("unexpected %s", r.Key())
		}
	}
	if !strict || !allowNothing || !couch {
		t.Errorf("strict=%v allowNothing=%v couchdb=%v", strict, allowNothing, couch)
	}
}
