package extauthz

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/peers"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// The workshop scenario (shared/scenarios/workshop): policy.rego and
// policy_test.rego are copied into testdata unchanged.
const (
	workshopPolicy     = "testdata/policy.rego"
	workshopPolicyTest = "testdata/policy_test.rego"
	workshopPath       = "istio/authz/allow"

	frontendSA       = "spiffe://cluster.local/ns/workshop/sa/frontend-sa"
	productcatalogSA = "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"
	catalogdetailSA  = "spiffe://cluster.local/ns/workshop/sa/catalogdetail-sa"
	ingressSA        = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
)

// workshopTokens reads the users' unsigned HS256 tokens out of
// policy_test.rego (OPA's io.jwt.decode does not verify signatures).
func workshopTokens(t testing.TB) map[string]string {
	t.Helper()
	src, err := os.ReadFile(workshopPolicyTest)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"(alice|bob|charlie)": "([A-Za-z0-9_.-]+)"`)
	tokens := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		tokens[m[1]] = m[2]
	}
	if len(tokens) != 3 {
		t.Fatalf("found %d tokens in %s, want 3", len(tokens), workshopPolicyTest)
	}
	return tokens
}

// opaProvider is the scenario's mesh config provider, pointed at addr.
func opaProvider(addr string) Provider {
	return Provider{
		Name: "opa-ext-authz-grpc",
		Spec: &meshv1alpha1.MeshConfig_ExtensionProvider{
			Name: "opa-ext-authz-grpc",
			Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{
				EnvoyExtAuthzGrpc: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
					Service: "opa-ext-authz-grpc.local",
					Port:    9191,
				},
			},
		},
		Address: addr,
	}
}

// workshopInput is a request as frontend's (or another workload's) sidecar
// sees it after the mTLS handshake.
func workshopInput(dest, host, method, path, token string) *CheckInput {
	h := http.Header{"User-Agent": {"curl/8.5.0"}, "Accept": {"*/*"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return &CheckInput{
		SourceAddress:        netip.MustParseAddrPort("127.0.0.1:40000"),
		DestinationAddress:   netip.MustParseAddrPort("127.0.0.1:9000"),
		SourcePrincipal:      ingressSA,
		DestinationPrincipal: dest,
		Method:               method,
		Path:                 path,
		Host:                 host,
		Scheme:               "http",
		Protocol:             "HTTP/1.1",
		Headers:              h,
	}
}

func TestWorkshopPolicyWithOPAEnvoyPlugin(t *testing.T) {
	addr := startOPA(t, workshopPolicy, workshopPath)
	tokens := workshopTokens(t)
	c, err := New(opaProvider(addr), WithClock(func() time.Time { return time.Unix(1707067200, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const frontend = "frontend.workshop.svc.cluster.local:9000"
	tests := []struct {
		name        string
		in          *CheckInput
		wantAllowed bool
	}{
		{"guest GET / on frontend", workshopInput(frontendSA, frontend, "GET", "/", tokens["alice"]), true},
		{"guest POST /products on frontend", workshopInput(frontendSA, frontend, "POST", "/products", tokens["alice"]), false},
		{"admin GET / on frontend", workshopInput(frontendSA, frontend, "GET", "/", tokens["bob"]), true},
		{"admin POST /products on frontend", workshopInput(frontendSA, frontend, "POST", "/products", tokens["bob"]), true},
		{"other GET / on frontend", workshopInput(frontendSA, frontend, "GET", "/", tokens["charlie"]), false},
		{"other POST /products on frontend", workshopInput(frontendSA, frontend, "POST", "/products", tokens["charlie"]), false},
		{"no token GET / on frontend", workshopInput(frontendSA, frontend, "GET", "/", ""), false},
		{"no token POST /products on frontend", workshopInput(frontendSA, frontend, "POST", "/products", ""), false},
		{"guest GET / on the wrong workload", workshopInput(productcatalogSA, frontend, "GET", "/", tokens["alice"]), false},
		{"productcatalog GET /products/", workshopInput(productcatalogSA, "productcatalog:5000", "GET", "/products/", ""), true},
		{"productcatalog GET /products/1", workshopInput(productcatalogSA, "productcatalog:5000", "GET", "/products/1", ""), true},
		{"productcatalog POST /products/1", workshopInput(productcatalogSA, "productcatalog:5000", "POST", "/products/1", ""), true},
		{"productcatalog DELETE /products/1", workshopInput(productcatalogSA, "productcatalog:5000", "DELETE", "/products/1", ""), false},
		{"productcatalog GET /products/1 with a query", workshopInput(productcatalogSA, "productcatalog:5000", "GET", "/products/1?x=1", ""), false},
		{"catalogdetail GET /catalogDetail", workshopInput(catalogdetailSA, "catalogdetail:3000", "GET", "/catalogDetail", ""), true},
		{"catalogdetail GET /catalogDetail as another workload", workshopInput(frontendSA, "catalogdetail:3000", "GET", "/catalogDetail", ""), false},
		{"guest token on an unprotected call", workshopInput(catalogdetailSA, "catalogdetail:3000", "GET", "/catalogDetail", tokens["alice"]), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Check(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if res.Err != nil {
				t.Fatalf("authorizer failure: %v", res.Err)
			}
			if res.Allowed != tt.wantAllowed {
				t.Fatalf("Allowed = %v (%s, status %d), want %v", res.Allowed, res.Reason, res.Status, tt.wantAllowed)
			}
			if !res.Allowed && res.Status != http.StatusForbidden {
				t.Errorf("Status = %d, want 403", res.Status)
			}
			if res.Allowed && res.Status != 0 {
				t.Errorf("allowed with Status %d", res.Status)
			}
		})
	}
}

// TestWorkshopPolicyOPATest runs the policy's own suite with the real opa.
func TestWorkshopPolicyOPATest(t *testing.T) {
	bin := peers.Binary(t, "PALISADE_OPA", "opa", "opa")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "test", "-v", workshopPolicy, workshopPolicyTest).CombinedOutput()
	if err != nil {
		t.Fatalf("opa test: %v\n%s", err, out)
	}
	// Every test rule in policy_test.rego must be reported as passing.
	src, err := os.ReadFile(workshopPolicyTest)
	if err != nil {
		t.Fatal(err)
	}
	want := len(regexp.MustCompile(`(?m)^test_\w+ if`).FindAll(src, -1))
	if want == 0 {
		t.Fatalf("no test rules found in %s", workshopPolicyTest)
	}
	if n := strings.Count(string(out), ": PASS"); n != want {
		t.Fatalf("opa test reported %d passing tests, want %d:\n%s", n, want, out)
	}
	if summary := fmt.Sprintf("PASS: %d/%d", want, want); !strings.Contains(string(out), summary) {
		t.Fatalf("opa test summary missing %q:\n%s", summary, out)
	}
}

// TestOPASeesTheCheckRequest runs testdata/echo.rego, which echoes what the
// real plugin parsed out of the CheckRequest back as header mutations.
func TestOPASeesTheCheckRequest(t *testing.T) {
	addr := startOPA(t, "testdata/echo.rego", "palisade/echo/result")
	p := opaProvider(addr)
	p.Spec.GetEnvoyExtAuthzGrpc().IncludeRequestBodyInCheck = &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody{MaxRequestBytes: 1024}
	c := newTestClient(t, p)
	in := workshopInput(frontendSA, "frontend:9000", "POST", "/products/new?id=1&id=2", "t0k3n")
	in.Headers.Set("Content-Type", "application/json")
	in.Body = []byte(`{"id": 7, "name": "tea"}`)
	in.Size = int64(len(in.Body))
	in.ContextExtensions = map[string]string{"tenant": "acme"}
	res, err := c.Check(context.Background(), in)
	if err != nil || !res.Allowed || res.Err != nil {
		t.Fatalf("Check = %+v, %v", res, err)
	}
	seen := map[string]string{}
	for _, m := range res.UpstreamHeaders {
		seen[strings.ToLower(m.Name)] = m.Value
	}
	want := map[string]string{
		"x-seen-method":       "POST",
		"x-seen-path":         "/products/new?id=1&id=2",
		"x-seen-host":         "frontend:9000",
		"x-seen-authority":    "frontend:9000",
		"x-seen-user-agent":   "curl/8.5.0",
		"x-seen-destination":  frontendSA,
		"x-seen-source":       ingressSA,
		"x-seen-parsed-path":  "products/new",
		"x-seen-parsed-query": "1,2",
		"x-seen-body-name":    "tea",
		"x-seen-context":      "acme",
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("OPA saw %s = %q, want %q", k, seen[k], v)
		}
	}
	if !strings.Contains(seen["x-seen-source-address"], "127.0.0.1") || !strings.Contains(seen["x-seen-source-address"], "40000") {
		t.Errorf("OPA saw source address %q", seen["x-seen-source-address"])
	}
	if len(res.UpstreamHeadersToRemove) != 1 || res.UpstreamHeadersToRemove[0] != "authorization" {
		t.Errorf("headers to remove = %v", res.UpstreamHeadersToRemove)
	}
	if len(res.ResponseHeaders) != 1 || res.ResponseHeaders[0].Name != "x-decision" || res.ResponseHeaders[0].Value != "echo" {
		t.Errorf("response headers = %+v", res.ResponseHeaders)
	}
}
