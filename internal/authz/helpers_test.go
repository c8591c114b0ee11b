package authz

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	"sigs.k8s.io/yaml"

	"palisade.dev/palisade/internal/config"
)

// pol is a policy written as YAML (flow style is fine) in a namespace.
type pol struct {
	ns, name, spec string
}

// P is a policy in the workload's namespace "foo".
func P(spec string) pol { return pol{ns: "foo", spec: spec} }

// PN is a policy in namespace ns.
func PN(ns, spec string) pol { return pol{ns: ns, spec: spec} }

func parseSpec(spec string) (*securityv1beta1.AuthorizationPolicy, error) {
	j, err := yaml.YAMLToJSON([]byte(spec))
	if err != nil {
		return nil, err
	}
	out := &securityv1beta1.AuthorizationPolicy{}
	if string(j) == "null" {
		return out, nil
	}
	if err := out.UnmarshalJSON(j); err != nil {
		return nil, err
	}
	return out, nil
}

func toPolicies(t testing.TB, ps []pol) []Policy {
	t.Helper()
	out := make([]Policy, 0, len(ps))
	for i, p := range ps {
		spec, err := parseSpec(p.spec)
		if err != nil {
			t.Fatalf("policy %d: %v\n%s", i, err, p.spec)
		}
		name := p.name
		if name == "" {
			name = fmt.Sprintf("p%d", i)
		}
		out = append(out, Policy{Namespace: p.ns, Name: name, Spec: spec})
	}
	return out
}

// loadFile reads a Kubernetes-style YAML document from testdata.
func loadPolicyDoc(t testing.TB, data []byte) Policy {
	t.Helper()
	var obj struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &obj); err != nil {
		t.Fatal(err)
	}
	spec := &securityv1beta1.AuthorizationPolicy{}
	if err := spec.UnmarshalJSON(obj.Spec); err != nil {
		t.Fatal(err)
	}
	return Policy{Namespace: obj.Metadata.Namespace, Name: obj.Metadata.Name, Spec: spec}
}

var httpbin = config.WorkloadRef{
	Namespace: "foo",
	Name:      "httpbin",
	Labels:    map[string]string{"app": "httpbin", "version": "v1"},
	Services:  []string{"httpbin"},
}

var ingress = config.WorkloadRef{
	Namespace: "istio-system",
	Name:      "istio-ingressgateway",
	Labels:    map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"},
	Gateway:   "httpbin-gateway",
}

const sleepPeer = "cluster.local/ns/foo/sa/sleep"

type reqOpt func(*Request)

// H is an HTTP request over mTLS from foo/sleep to httpbin.foo:8000.
func H(method, path string, opts ...reqOpt) Request {
	r := Request{
		SourceIP:        netip.MustParseAddr("10.0.0.1"),
		DestinationIP:   netip.MustParseAddr("10.0.0.2"),
		DestinationPort: 8000,
		Principal:       sleepPeer,
		SNI:             "outbound_.8000_._.httpbin.foo.svc.cluster.local",
		IsHTTP:          true,
		Host:            "httpbin.foo",
		Method:          method,
		Path:            path,
		Headers:         http.Header{},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// T is a TCP connection over mTLS from foo/sleep to port 9000.
func T(opts ...reqOpt) Request {
	r := H("", "", opts...)
	r.IsHTTP, r.Host, r.Method, r.Path, r.Headers = false, "", "", "", nil
	if r.DestinationPort == 8000 {
		r.DestinationPort = 9000
	}
	return r
}

func peer(p string) reqOpt    { return func(r *Request) { r.Principal = p } }
func plain() reqOpt           { return func(r *Request) { r.Principal, r.SNI = "", "" } }
func host(h string) reqOpt    { return func(r *Request) { r.Host = h } }
func port(p uint32) reqOpt    { return func(r *Request) { r.DestinationPort = p } }
func sni(s string) reqOpt     { return func(r *Request) { r.SNI = s } }
func src(ip string) reqOpt    { return func(r *Request) { r.SourceIP = netip.MustParseAddr(ip) } }
func remote(ip string) reqOpt { return func(r *Request) { r.RemoteIP = netip.MustParseAddr(ip) } }
func dst(ip string) reqOpt    { return func(r *Request) { r.DestinationIP = netip.MustParseAddr(ip) } }
func hdr(k string, vs ...string) reqOpt {
	return func(r *Request) {
		for _, v := range vs {
			r.Headers.Add(k, v)
		}
	}
}

// jwt sets a validated token with iss and sub, and extra claims.
func jwt(iss, sub string, claims map[string]any) reqOpt {
	return func(r *Request) {
		c := map[string]any{"iss": iss, "sub": sub}
		for k, v := range claims {
			c[k] = v
		}
		a := &AuthInfo{Principal: iss + "/" + sub, Claims: c}
		switch aud := c["aud"].(type) {
		case string:
			a.Audiences = []string{aud}
		case []any:
			for _, x := range aud {
				if s, ok := x.(string); ok {
					a.Audiences = append(a.Audiences, s)
				}
			}
		}
		if azp, ok := c["azp"].(string); ok {
			a.Presenter = azp
		}
		r.Auth = a
	}
}

func compileT(t testing.TB, ps []pol, w config.WorkloadRef, opts Options) *Engine {
	t.Helper()
	e, err := Compile(toPolicies(t, ps), w, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}
