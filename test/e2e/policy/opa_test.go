package policy_test

import (
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// The HS256 tokens of policy_test.rego: OPA's io.jwt.decode reads them
// without verifying, and the mesh has no RequestAuthentication here.
const (
	aliceGuest   = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDcwNjc0OTQsImlhdCI6MTcwNzA2NzE5NCwiaXNzIjoiaHR0cDovL2tleWNsb2FrLmV4YW1wbGUuY29tL3JlYWxtcy9pc3RpbyIsImF1ZCI6InByb2R1Y3RhcHAiLCJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSIsInR5cCI6IkJlYXJlciIsInJlYWxtX2FjY2VzcyI6eyJyb2xlcyI6WyJndWVzdCJdfSwic2NvcGUiOiJwcm9maWxlIGVtYWlsIiwiZW1haWxfdmVyaWZpZWQiOnRydWUsIm5hbWUiOiJBbGljZSIsInByZWZlcnJlZF91c2VybmFtZSI6ImFsaWNlIiwiZ2l2ZW5fbmFtZSI6IkFsaWNlIiwiZW1haWwiOiJhbGljZUBleGFtcGxlLmNvbSJ9.4XV28MCT1-8i_FAx2of0f5oPFuU4i14lO9wlzGntuCc"
	bobAdmin     = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDcwNjc0OTQsImlhdCI6MTcwNzA2NzE5NCwiaXNzIjoiaHR0cDovL2tleWNsb2FrLmV4YW1wbGUuY29tL3JlYWxtcy9pc3RpbyIsImF1ZCI6InByb2R1Y3RhcHAiLCJzdWIiOiJib2JAZXhhbXBsZS5jb20iLCJ0eXAiOiJCZWFyZXIiLCJyZWFsbV9hY2Nlc3MiOnsicm9sZXMiOlsiYWRtaW4iXX0sInNjb3BlIjoicHJvZmlsZSBlbWFpbCIsImVtYWlsX3ZlcmlmaWVkIjp0cnVlLCJuYW1lIjoiQm9iIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiYm9iIiwiZ2l2ZW5fbmFtZSI6IkJvYiIsImVtYWlsIjoiYm9iQGV4YW1wbGUuY29tIn0.6Bj2uZgMScCOq4h8XY1Klg0kk1vkZv9Fg_dnY6srjA4"
	charlieOther = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDcwNjc0OTQsImlhdCI6MTcwNzA2NzE5NCwiaXNzIjoiaHR0cDovL2tleWNsb2FrLmV4YW1wbGUuY29tL3JlYWxtcy9pc3RpbyIsImF1ZCI6InByb2R1Y3RhcHAiLCJzdWIiOiJjaGFybGllQGV4YW1wbGUuY29tIiwidHlwIjoiQmVhcmVyIiwicmVhbG1fYWNjZXNzIjp7InJvbGVzIjpbIm90aGVyIl19LCJzY29wZSI6InByb2ZpbGUgZW1haWwiLCJlbWFpbF92ZXJpZmllZCI6dHJ1ZSwibmFtZSI6IkNoYXJsaWUiLCJwcmVmZXJyZWRfdXNlcm5hbWUiOiJjaGFybGllIiwiZ2l2ZW5fbmFtZSI6IkNoYXJsaWUiLCJlbWFpbCI6ImNoYXJsaWVAZXhhbXBsZS5jb20ifQ.8QYfbWaPygOt8KXteauGSO-G_Q_27O17llsRPVfSg4k"
)

const (
	frontendID       = "spiffe://cluster.local/ns/workshop/sa/frontend-sa"
	productcatalogID = "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"
	catalogdetailID  = "spiffe://cluster.local/ns/workshop/sa/catalogdetail-sa"
	userID           = "spiffe://cluster.local/ns/clients/sa/user-sa"
)

// userClientYAML is a client inside the mesh, in a namespace of its own
// with its own service account: the "user" whose requests carry tokens.
var userClientYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: clients
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: user-sa
  namespace: clients
---
` + echoWorkload("clients", "user", "user-sa", 8080, map[string]string{"app": "user"})

// The workshop's policy passes its own test suite under the real opa.
func TestWorkshopPolicyUnitTests(t *testing.T) {
	b := meshtest.Build(t)
	opa := peerBinary(t, b, "PALISADE_OPA", "opa")
	dir := filepath.Join(b.Root, "examples", "workshop", "optional")
	out, err := exec.Command(opa, "test", "-v", filepath.Join(dir, "policy.rego"), filepath.Join(dir, "policy_test.rego")).CombinedOutput()
	if err != nil {
		t.Fatalf("opa test: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`PASS: (\d+)/(\d+)`).FindStringSubmatch(string(out))
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Fatalf("opa test did not pass every test:\n%s", out)
	}
}

// Scenario 3 of the workshop: every request in namespace workshop goes to
// the real OPA Envoy plugin on 127.0.0.1:9191 (the scenario's
// ServiceEntry), running policy.rego unchanged.
func TestWorkshopOPACustomPolicy(t *testing.T) {
	b := meshtest.Build(t)
	b.BuildMain(t, "./test/e2e/policy/echoapp")
	optional := filepath.Join(b.Root, "examples", "workshop", "optional")
	opa := startOPA(t, b, filepath.Join(optional, "policy.rego"), "127.0.0.1:9191")

	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	copyFile(t, filepath.Join(optional, "productapp-authorizationpolicy.yaml"), dir)
	copyFile(t, filepath.Join(optional, "opa-ext-authz-serviceentry.yaml"), dir)
	writeFile(t, dir, "user-client.yaml", userClientYAML)
	m := meshtest.Up(t, b, dir)
	c := m.Client("clients", "user")
	const front = "http://frontend.workshop:9000"
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	form := func(id, name string) *strings.Reader {
		return strings.NewReader(url.Values{"id": {id}, "name": {name}}.Encode())
	}
	formHeader := func(tok string) []string {
		return append(bearer(tok), "Content-Type", "application/x-www-form-urlencoded")
	}
	text := func(html string) string { return regexp.MustCompile(`<[^>]*>`).ReplaceAllString(html, "") }

	// Guest: the page renders with the catalog, so frontend's calls to
	// productcatalog and on to catalogdetail, which carry no user token,
	// were allowed by OPA as unprotected service-to-service operations.
	r := do(t, c, "GET", front+"/", nil, bearer(aliceGuest)...)
	if r.Status != 200 {
		t.Fatalf("alice (guest) GET /: %d %s, want 200", r.Status, r.Body)
	}
	for _, want := range []string{"Table", "Chair", "ABC.com",
		"productcatalog was called by: " + frontendID, "catalogdetail was called by: " + productcatalogID} {
		if !strings.Contains(text(r.Body), want) {
			t.Errorf("alice (guest) GET / lacks %q:\n%s", want, text(r.Body))
		}
	}
	if r := do(t, c, "POST", front+"/products", form("7", "Lamp"), formHeader(aliceGuest)...); r.Status != 403 {
		t.Errorf("alice (guest) POST /products: %d %s, want 403", r.Status, r.Body)
	}

	// Admin: both; the product bob adds shows on the page.
	if r := do(t, c, "GET", front+"/", nil, bearer(bobAdmin)...); r.Status != 200 {
		t.Errorf("bob (admin) GET /: %d %s, want 200", r.Status, r.Body)
	}
	if r := do(t, c, "POST", front+"/products", form("42", "Bookshelf"), formHeader(bobAdmin)...); r.Status != 303 {
		t.Errorf("bob (admin) POST /products: %d %s, want 303 (added, back to /)", r.Status, r.Body)
	}
	if r := do(t, c, "GET", front+"/", nil, bearer(bobAdmin)...); !strings.Contains(text(r.Body), "Bookshelf") {
		t.Errorf("bob (admin) GET / after adding: %d, lacks Bookshelf:\n%s", r.Status, text(r.Body))
	}
	if r := do(t, c, "GET", front+"/", nil, bearer(aliceGuest)...); strings.Contains(text(r.Body), "Lamp") {
		t.Errorf("alice's denied POST added a product anyway:\n%s", text(r.Body))
	}

	// Other role, or no token at all: denied.
	if r := do(t, c, "GET", front+"/", nil, bearer(charlieOther)...); r.Status != 403 {
		t.Errorf("charlie (other) GET /: %d %s, want 403", r.Status, r.Body)
	}
	if r := do(t, c, "GET", front+"/", nil); r.Status != 403 {
		t.Errorf("no token GET /: %d %s, want 403", r.Status, r.Body)
	}

	// The access logs name the CUSTOM decision and the policy.
	allow := findAccess(t, m, "workshop", "frontend", "GET", "/", 200)
	deny := findAccess(t, m, "workshop", "frontend", "POST", "/products", 403)
	hop := findAccess(t, m, "workshop", "productcatalog", "GET", "/products/", 200)
	for _, l := range []map[string]any{allow, deny, hop} {
		if p, _ := l["authz_policy"].(string); !strings.Contains(p, "workshop/productapp") {
			t.Errorf("access log line names policy %q, want workshop/productapp: %v", p, l)
		}
	}
	if allow["authz_decision"] != "CUSTOM-ALLOW" || allow["source_principal"] != userID {
		t.Errorf("frontend GET / access log: %v, want CUSTOM-ALLOW from %s", allow, userID)
	}
	if deny["authz_decision"] != "CUSTOM-DENY" {
		t.Errorf("frontend POST /products access log: %v, want CUSTOM-DENY", deny)
	}
	if hop["authz_decision"] != "CUSTOM-ALLOW" || hop["source_principal"] != frontendID {
		t.Errorf("productcatalog GET /products/ access log: %v, want CUSTOM-ALLOW from %s", hop, frontendID)
	}

	// OPA's decision log saw each destination's SPIFFE ID, the source's,
	// and decided as above.
	type seen struct{ dest, src, method, path string }
	want := map[seen]bool{
		{frontendID, userID, "GET", "/"}:                             true,
		{frontendID, userID, "POST", "/products"}:                    false,
		{productcatalogID, frontendID, "GET", "/products/"}:          true,
		{catalogdetailID, productcatalogID, "GET", "/catalogDetail"}: true,
	}
	meshtest.Eventually(t, 5*time.Second, "OPA decision log", func() error {
		got := map[seen][]any{}
		for _, l := range jsonLines(opa.out.String()) {
			if l["msg"] != "Decision Log" {
				continue
			}
			attrs := dig(l, "input", "attributes")
			k := seen{str(dig(attrs, "destination", "principal")), str(dig(attrs, "source", "principal")),
				str(dig(attrs, "request", "http", "method")), str(dig(attrs, "request", "http", "path"))}
			got[k] = append(got[k], l["result"])
		}
		for k, allowed := range want {
			found := false
			for _, res := range got[k] {
				if res == allowed {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("no decision %v for %+v; decisions: %v", allowed, k, got)
			}
		}
		return nil
	})
}

// dig walks nested JSON objects.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }
