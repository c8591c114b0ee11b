package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestRunAuthzCheck runs `palisade authz check` on testdata/authz-check:
// shop/catalog has a DENY on /admin*, an ALLOW for shop/frontend's service
// account (frontend-sa) with GET, and a CUSTOM policy on /orders* for the
// ext-authz provider. legacy/web is a workload whose name is also another
// workload's service account.
func TestRunAuthzCheck(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int      // 0 = nil error
		want     []string // in stdout, or in the error for code 2
		notWant  []string
	}{
		{
			name: "--from NS/NAME is the workload's service account, allowed by the ALLOW rule",
			args: []string{"--from", "shop/frontend", "--path", "/items"},
			want: []string{
				"from: workload shop/frontend (service account shop/frontend-sa)",
				"ALLOW: matched an ALLOW policy (ALLOW shop/allow-frontend rule 0)",
				"ALLOW shop/allow-frontend: MATCHED",
			},
		},
		{
			name:     "--from NS/sa/SA names a service account; the failing field of each policy is shown",
			args:     []string{"--from", "shop/sa/catalog-sa", "--path", "/items"},
			wantCode: 1,
			want: []string{
				"from: service account shop/catalog-sa",
				"DENY (403 RBAC: access denied): no ALLOW policy matched",
				"ALLOW shop/allow-frontend: did not match",
				`failed: from[0].source.principals: want values ["cluster.local/ns/shop/sa/frontend-sa"], request has principal "cluster.local/ns/shop/sa/catalog-sa"`,
				`failed: to[0].operation.paths: want values ["/admin*"], request has "/items"`,
			},
		},
		{
			name:     "--from spiffe:// ID; a DENY names its policy and rule, mixed case included",
			args:     []string{"--from", "spiffe://cluster.local/ns/shop/sa/frontend-sa", "--path", "/ADMIN/users"},
			wantCode: 1,
			want: []string{
				"from: SPIFFE ID spiffe://cluster.local/ns/shop/sa/frontend-sa",
				"DENY (403 RBAC: access denied): matched a DENY policy (DENY shop/deny-admin rule 0)",
			},
		},
		{
			name: "--from an Istio principal",
			args: []string{"--from", "cluster.local/ns/shop/sa/frontend-sa", "--path", "/items"},
			want: []string{"from: principal cluster.local/ns/shop/sa/frontend-sa", "ALLOW: matched an ALLOW policy"},
		},
		{
			name: "a request selected by CUSTOM is reported as going to its provider",
			args: []string{"--from", "shop/frontend", "--path", "/orders/1"},
			want: []string{
				`CUSTOM: sent to extension provider "ext-authz" first (policy CUSTOM shop/ext-check rule 0)`,
				"CUSTOM shop/ext-check: MATCHED",
			},
		},
		{
			name:    "a request CUSTOM does not select is not sent to the provider",
			args:    []string{"--from", "shop/frontend", "--path", "/items"},
			want:    []string{"CUSTOM shop/ext-check: did not match"},
			notWant: []string{"sent to extension provider"},
		},
		{
			name:     "--method is sent as given: an ALLOW on GET does not admit get",
			args:     []string{"--from", "shop/frontend", "--method", "get", "--path", "/items"},
			wantCode: 1,
			want:     []string{`failed: to[0].operation.methods: want values ["GET"], request has "get"`},
		},
		{
			name: "--from NS/NAME that is no workload but a service account says it read a service account",
			args: []string{"--from", "shop/frontend-sa", "--path", "/items"},
			want: []string{
				"from: service account shop/frontend-sa (no workload of that name; shop/frontend run as it)",
				"ALLOW: matched an ALLOW policy (ALLOW shop/allow-frontend rule 0)",
			},
		},
		{
			name:     "--from an unknown workload is refused",
			args:     []string{"--from", "shop/nope"},
			wantCode: 2,
			want:     []string{"no workload or service account shop/nope in the config", "shop/sa/SERVICEACCOUNT"},
		},
		{
			name:     "the verdict is the first line, the source follows",
			args:     []string{"--from", "shop/sa/catalog-sa", "--path", "/items"},
			wantCode: 1,
			want:     []string{"DENY (403 RBAC: access denied): no ALLOW policy matched\nfrom: service account shop/catalog-sa\n"},
		},
		{
			name:     "--from NS/NAME naming a workload and another service account is ambiguous",
			args:     []string{"--from", "legacy/web"},
			wantCode: 2,
			want:     []string{"legacy/web is ambiguous", "legacy/sa/web-sa", "legacy/sa/web"},
		},
		{
			name:     "--from a malformed SPIFFE ID is refused",
			args:     []string{"--from", "spiffe://cluster.local/ns/shop/sa/"},
			wantCode: 2,
			want:     []string{"is not a SPIFFE ID"},
		},
		{
			name:     "--from with an empty segment is refused",
			args:     []string{"--from", "shop//frontend"},
			wantCode: 2,
			want:     []string{"empty segment"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"check", "-f", "testdata/authz-check", "--to", "shop/catalog"}, tc.args...)
			err := runAuthz(context.Background(), args, &out, &errOut)
			code, text := 0, out.String()
			if err != nil {
				var ee exitError
				if !errors.As(err, &ee) {
					t.Fatalf("error %v is not an exitError", err)
				}
				code = ee.code
				if code == 2 {
					text = err.Error()
				}
			}
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d (err %v)\n%s", code, tc.wantCode, err, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(text, w) {
					t.Errorf("output has %q:\n%s", w, text)
				}
			}
		})
	}

	t.Run("json output names the policy, the rule and the provider", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := runAuthz(context.Background(), []string{"check", "-f", "testdata/authz-check", "--to", "shop/catalog", "--from", "shop/frontend", "--path", "/orders/1", "-o", "json"}, &out, &errOut)
		if err != nil {
			t.Fatalf("err %v\n%s", err, errOut.String())
		}
		var x struct {
			Decision struct {
				Allowed bool `json:"allowed"`
				Policy  struct {
					Namespace, Name, Action string
					Rule                    int
				} `json:"policy"`
			} `json:"decision"`
			CustomMatched  bool                  `json:"customMatched"`
			CustomProvider string                `json:"customProvider"`
			CustomPolicy   struct{ Name string } `json:"customPolicy"`
			Policies       []struct {
				Policy  struct{ Name string } `json:"policy"`
				Matched bool                  `json:"matched"`
			} `json:"policies"`
		}
		if err := json.Unmarshal(out.Bytes(), &x); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		d := x.Decision
		if !d.Allowed || d.Policy.Name != "allow-frontend" || d.Policy.Action != "ALLOW" || d.Policy.Rule != 0 {
			t.Errorf("decision %+v", d)
		}
		if !x.CustomMatched || x.CustomProvider != "ext-authz" || x.CustomPolicy.Name != "ext-check" {
			t.Errorf("custom %v %q %q", x.CustomMatched, x.CustomProvider, x.CustomPolicy.Name)
		}
		if len(x.Policies) != 3 {
			t.Errorf("want 3 policies, got %+v", x.Policies)
		}
	})
}
