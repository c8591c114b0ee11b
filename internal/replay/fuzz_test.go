package replay

import (
	"testing"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
)

// A proposal is outside input (pasted in the dashboard, read by authz
// replay): whatever decodes replays without panicking, and every change
// it reports is one of the three kinds.
func FuzzRun(f *testing.F) {
	for _, seed := range []string{noDelete,
		"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}",
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: db, namespace: shop}\nspec:\n  selector: {matchLabels: {app: db}}\n  rules: [{from: [{source: {principals: [\"*\"]}}], to: [{operation: {ports: [\"5432\"]}}]}]",
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: all, namespace: istio-system}\nspec: {action: DENY, rules: [{when: [{key: request.auth.claims[iss], values: [x]}]}]}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		rs, err := config.Decode("proposal.yaml", []byte(doc))
		if err != nil {
			return
		}
		cur := snapshotOf(t, mesh)
		res, err := Run(cur, Overlay(cur, rs), controlplane.ConfigRegistry{}.Workloads(cur), window())
		if err != nil {
			return // a proposal the compiler refuses is reported, not replayed
		}
		for _, c := range res.Changes {
			if c.Kind != AllowedToDenied && c.Kind != DeniedToAllowed && c.Kind != StrictReset {
				t.Fatalf("change of kind %q", c.Kind)
			}
		}
	})
}
