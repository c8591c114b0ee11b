package analyze

import (
	"strings"
	"testing"
)

// PAL0008: what the proxy's compilers refuse though validation passed.
func TestProxyRefusals(t *testing.T) {
	// Valid for Istio (an issuer is set), but with no jwks, no jwksUri and
	// an issuer that is no URL, there is nowhere to get keys from.
	noKeys := "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: shop}\nspec:\n  jwtRules: [{issuer: testing@secure.istio.io}]"
	var got []Finding
	for _, f := range Run(snapshot(t, "", noKeys, requireJWT)) {
		if f.Code == CodeProxyRefuses {
			got = append(got, f)
		}
	}
	if codes(got) != "Error:PAL0008:RequestAuthentication shop/jwt" || !strings.Contains(got[0].Message, "in.yaml:1: the proxy refuses it: jwt: RequestAuthentication shop/jwt: jwtRules[0].issuer: neither jwks nor jwksUri is set") {
		t.Errorf("findings = %v", got)
	}
	if fs := Run(snapshot(t, "", raCart, requireJWT, workload)); len(fs) != 0 {
		t.Errorf("clean policies: findings = %v", fs)
	}
}
