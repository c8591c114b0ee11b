package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// KindMeshConfig names the mesh configuration in error messages.
const KindMeshConfig Kind = "MeshConfig"

// DecodeMesh decodes mesh.yaml: a bare MeshConfig document, as under the
// `mesh` key of Istio's istio configmap, decoded strictly (unknown fields
// are errors). Istio's defaults are applied to the fields Palisade reads
// (trustDomain cluster.local, rootNamespace istio-system). An empty file
// gives the defaults.
func DecodeMesh(file string, data []byte) (mc *meshv1alpha1.MeshConfig, err error) {
	defer func() {
		if p := recover(); p != nil {
			mc, err = nil, &FieldError{File: file, Line: 1, Kind: KindMeshConfig, Message: fmt.Sprintf("cannot decode: %v", p)}
		}
	}()
	return decodeMesh(file, data)
}

// decodeMesh is DecodeMesh without the recover, for the fuzz test.
func decodeMesh(file string, data []byte) (*meshv1alpha1.MeshConfig, error) {
	r := &Resource{Kind: KindMeshConfig, Source: Source{File: file, Line: 1}, lines: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		fe := yamlError(file, data, err).(*FieldError)
		fe.Kind = KindMeshConfig
		return nil, fe
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, yamlError(file, data, err)
		}
		return nil, &FieldError{File: file, Line: line, Kind: KindMeshConfig, Message: "mesh config must be a single YAML document"}
	}
	mc := &meshv1alpha1.MeshConfig{}
	if len(doc.Content) > 0 && !(doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].ShortTag() == "!!null") {
		top := doc.Content[0]
		r.Source.Line = top.Line
		if top.Kind != yaml.MappingNode {
			return nil, &FieldError{File: file, Line: top.Line, Kind: KindMeshConfig, Message: "mesh config must be a YAML mapping"}
		}
		jd, err := toJSON(top, "")
		if err != nil {
			return nil, r.wrapPathError(err)
		}
		r.mergeLines(jd)
		if err := protojson.Unmarshal(jd.buf.Bytes(), mc); err != nil {
			return nil, r.protoError(jd, err)
		}
	}
	if mc.TrustDomain == "" {
		mc.TrustDomain = DefaultTrustDomain
	}
	if mc.RootNamespace == "" {
		mc.RootNamespace = DefaultRootNamespace
	}
	c := &checker{r: r}
	if !IsDNS1123Subdomain(mc.TrustDomain) {
		c.errorf("trustDomain", "invalid trust domain %q", mc.TrustDomain)
	}
	if !IsDNS1123Label(mc.RootNamespace) {
		c.errorf("rootNamespace", "invalid root namespace %q: must be a DNS-1123 label", mc.RootNamespace)
	}
	seen := map[string]bool{}
	for i, p := range mc.GetExtensionProviders() {
		path := fmt.Sprintf("extensionProviders[%d].name", i)
		switch {
		case p.GetName() == "":
			c.errorf(path, "extension provider name must be set")
		case seen[p.GetName()]:
			c.errorf(path, "duplicate extension provider name %q", p.GetName())
		}
		seen[p.GetName()] = true
		if g := p.GetEnvoyExtAuthzGrpc(); g != nil {
			if g.GetService() == "" {
				c.errorf(fmt.Sprintf("extensionProviders[%d].envoyExtAuthzGrpc.service", i), "service must be set")
			}
			c.port(fmt.Sprintf("extensionProviders[%d].envoyExtAuthzGrpc.port", i), g.GetPort())
		}
		if h := p.GetEnvoyExtAuthzHttp(); h != nil {
			if h.GetService() == "" {
				c.errorf(fmt.Sprintf("extensionProviders[%d].envoyExtAuthzHttp.service", i), "service must be set")
			}
			c.port(fmt.Sprintf("extensionProviders[%d].envoyExtAuthzHttp.port", i), h.GetPort())
		}
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	return mc, nil
}
