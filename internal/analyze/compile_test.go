package analyze

import (
	"strings"
	"testing"
)

// PAL0008: what the proxy's compilers refuse though validation passed.
func TestProxyRefusals(t *testing.T) {
	noIssuer := "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: shop}\nspec:\n  jwtRules: [{jwksUri: https://idp.example.com/keys}]"
	var got []Finding
	for _, f := range Run(snapshot(t, "", noIssuer, requireJWT)) {
		if f.Code == CodeProxyRefuses {
			got = append(got, f)
		}
	}
	if codes(got) != "Error:PAL0008:RequestAuthentication shop/jwt" || !strings.Contains(got[0].Message, "in.yaml:1: the proxy refuses it: jwt: RequestAuthentication shop/jwt: jwtRules[0].issuer: required") {
		t.Errorf("findings = %v", got)
	}
	if fs := Run(snapshot(t, "", raCart, requireJWT, workload)); len(fs) != 0 {
		t.Errorf("clean policies: findings = %v", fs)
	}
}
