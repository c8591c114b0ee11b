package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	goodNS   = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
	badAP    = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: shop}\nspec:\n  action: NOPE\n"
	typoNSAP = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: shpo}\nspec: {}\n"
	// Mesh-wide STRICT, shop PERMISSIVE, and a DestinationRule disabling
	// TLS toward a shop host: shop accepts the plaintext.
	meshStrictPA   = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n"
	shopPermissive = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec:\n  mtls: {mode: PERMISSIVE}\n"
	cartDisableDR  = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: plain, namespace: shop}\nspec:\n  host: cart.shop.svc.cluster.local\n  trafficPolicy:\n    tls: {mode: DISABLE}\n"
)

func TestRunAnalyze(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		args     []string
		wantCode int // 0 = nil error
		wantOut  string
	}{
		{"clean", map[string]string{"a.yaml": goodNS}, nil, 0, "No problems found in 1 resources."},
		{"validation error exits 2", map[string]string{"a.yaml": goodNS, "b.yaml": badAP}, nil, 2, "Error [PAL0001] (AuthorizationPolicy shop/a) "},
		{"warning without strict exits 0", map[string]string{"a.yaml": goodNS, "b.yaml": typoNSAP}, nil, 0, "Warning [PAL0006]"},
		{"warning with strict exits 1", map[string]string{"a.yaml": goodNS, "b.yaml": typoNSAP}, []string{"--strict"}, 1, "0 errors, 1 warnings, 0 infos."},
		{"json output", map[string]string{"b.yaml": badAP}, []string{"-o", "json"}, 2, `"code": "PAL0001"`},
		{"namespace PERMISSIVE under mesh STRICT exits 0", map[string]string{"a.yaml": goodNS, "root.yaml": meshStrictPA, "shop.yaml": shopPermissive, "dr.yaml": cartDisableDR}, nil, 0, "No problems found in 4 resources."},
		{"mTLS conflict exits 2", map[string]string{"a.yaml": goodNS, "root.yaml": meshStrictPA, "dr.yaml": cartDisableDR}, nil, 2, "Error [PAL0002] (DestinationRule shop/plain) "},
		{"bad format", map[string]string{"a.yaml": goodNS}, []string{"-o", "xml"}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTemp(t, tc.files)
			var out, errOut bytes.Buffer
			err := runAnalyze(context.Background(), append(tc.args, dir), &out, &errOut)
			code := 0
			if err != nil {
				var ee exitError
				if !errors.As(err, &ee) {
					t.Fatalf("error %v is not an exitError", err)
				}
				code = ee.code
			}
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d (err %v)\n%s", code, tc.wantCode, err, out.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out.String())
			}
			if tc.name == "json output" {
				var fs []map[string]any
				if err := json.Unmarshal(out.Bytes(), &fs); err != nil || len(fs) != 1 || fs[0]["level"] != "Error" {
					t.Errorf("json = %s (%v)", out.String(), err)
				}
			}
		})
	}
}

func TestRunConvert(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runConvert(context.Background(), []string{"testdata/legacy-policies.yaml"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: PeerAuthentication", "mode: STRICT", "name: allow-nothing", "cluster.local/ns/with-istio/sa/test-app-test-app-chart"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	dir := writeTemp(t, map[string]string{"bad.yaml": badAP})
	err := runConvert(context.Background(), []string{filepath.Join(dir, "bad.yaml")}, &out, &errOut)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "bad.yaml:5:") {
		t.Errorf("err = %v", err)
	}
}
