package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const nsYAML = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n"

func ns(name string) string { return strings.ReplaceAll(nsYAML, "%s", name) }

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr []string // substrings, all must appear
		want    []string // resource keys in order
		trust   string
	}{
		{
			name:  "directory with yml and mesh, subdirectories not read",
			files: map[string]string{"a.yaml": ns("b"), "c.yml": ns("a"), "sub/d.yaml": "{{ not read", "mesh.yaml": "trustDomain: example.org\n", "notes.txt": "x", ".hidden.yaml": "{{ not yaml"},
			want:  []string{"Namespace a", "Namespace b"},
			trust: "example.org",
		},
		{
			name:  "defaults without mesh",
			files: map[string]string{"a.yaml": ns("a")},
			want:  []string{"Namespace a"},
			trust: DefaultTrustDomain,
		},
		{
			name:    "duplicate across files names both",
			files:   map[string]string{"a.yaml": ns("x"), "b.yaml": "\n" + ns("x")},
			wantErr: []string{"b.yaml:5: Namespace x: metadata.name: duplicate Namespace x, first declared at ", "a.yaml:1"},
		},
		{
			name: "two workloads at one address",
			files: map[string]string{
				"a.yaml": "apiVersion: palisade.dev/v1alpha1\nkind: Workload\nmetadata: {name: a, namespace: shop}\nspec:\n  command: x\n  address: 10.250.0.7\n  ports: [{number: 80}]\n",
				"b.yaml": "apiVersion: palisade.dev/v1alpha1\nkind: Workload\nmetadata: {name: b, namespace: shop}\nspec:\n  command: x\n  address: 10.250.0.7\n  ports: [{number: 80}]\n",
			},
			wantErr: []string{"b.yaml:6: Workload shop/b: spec.address: address 10.250.0.7 is already Workload shop/a's, at ", "a.yaml:1"},
		},
		{
			name:    "errors from several files are all reported",
			files:   map[string]string{"a.yaml": "kind: Namespace\n", "b.yaml": "a: [\n"},
			wantErr: []string{"a.yaml:1: Namespace: apiVersion: apiVersion is required", "b.yaml:", "invalid YAML"},
		},
		{
			name:    "bad mesh",
			files:   map[string]string{"mesh.yml": "trustDomain: a\nrootNamespce: b\n"},
			wantErr: []string{"mesh.yml:2: MeshConfig: rootNamespce: unknown field"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			snap, err := Load(dir)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("Load succeeded, want error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range snap.Resources {
				got = append(got, r.Key().String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("resources = %v, want %v", got, tc.want)
			}
			if snap.Mesh.GetTrustDomain() != tc.trust || snap.Mesh.GetRootNamespace() != DefaultRootNamespace {
				t.Errorf("mesh = %v", snap.Mesh)
			}
			if snap.Version != 1 {
				t.Errorf("version = %d", snap.Version)
			}
		})
	}
}

func TestLoadMissingPath(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.HasPrefix(err.Error(), "config: load: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeMesh(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
		root                 string
	}{
		{name: "empty gives defaults", input: "", root: "istio-system"},
		{name: "root namespace", input: "rootNamespace: mesh-root\n", root: "mesh-root"},
		{name: "unknown field", input: "trustDomain: a\nextensionProviders:\n- name: x\n  envoyExtAuthzGrpc:\n    service: s\n    prot: 1\n", wantErr: "m.yaml:6: MeshConfig: extensionProviders[0].envoyExtAuthzGrpc.prot: unknown field"},
		{name: "duplicate provider", input: "extensionProviders:\n- name: x\n  envoyExtAuthzGrpc: {service: s, port: 1}\n- name: x\n  envoyExtAuthzGrpc: {service: s, port: 2}\n", wantErr: "m.yaml:4: MeshConfig: extensionProviders[1].name: duplicate extension provider"},
		{name: "two documents", input: "trustDomain: a\n---\ntrustDomain: b\n", wantErr: "single YAML document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mc, err := DecodeMesh("m.yaml", []byte(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mc.GetRootNamespace() != tc.root || mc.GetTrustDomain() == "" {
				t.Errorf("mesh = %v", mc)
			}
		})
	}
}
