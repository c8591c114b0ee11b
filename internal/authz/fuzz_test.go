package authz

import (
	"net/http"
	"net/netip"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// picker turns fuzz bytes into choices.
type picker struct {
	b []byte
	i int
}

func (p *picker) n(max int) int {
	if p.i >= len(p.b) || max <= 0 {
		return 0
	}
	v := int(p.b[p.i]) % max
	p.i++
	return v
}

func (p *picker) some(vocab []string) []string {
	k := p.n(3)
	out := make([]string, 0, k)
	for j := 0; j < k; j++ {
		out = append(out, vocab[p.n(len(vocab))])
	}
	return out
}

var (
	vPrincipals = []string{sleepPeer, "cluster.local/ns/*", "*/sa/sleep", "*", "cluster.local/ns/bar/sa/x"}
	vNamespaces = []string{"foo", "bar", "*", "f*", "*o"}
	vReqP       = []string{"iss/sub", "*", "iss/*", "*/sub", "other/sub"}
	vIPs        = []string{"10.0.0.0/8", "10.0.0.1", "192.168.0.0/16", "2001:db8::/32"}
	vHosts      = []string{"httpbin.foo", "*.foo", "httpbin.*", "*", "other.example", "httpbin.foo:*"}
	vPorts      = []string{"8000", "9000"}
	vMethods    = []string{"GET", "POST", "*", "P*", "get", "*ET"}
	vPaths      = []string{"/admin", "/admin*", "*/info", "/api/{*}", "/api/{**}", "*", "/", "/Admin*", "/API/{*}"}
	vConds      = []struct {
		key  string
		vals []string
	}{
		{"request.headers[x-a]", []string{"1", "*", "2", "1*", "1,2", "*,2", "*2"}},
		{"source.namespace", vNamespaces},
		{"source.principal", vPrincipals},
		{"request.auth.claims[groups]", []string{"g1", "g2", "*"}},
		{"destination.port", vPorts},
		{"connection.sni", []string{"*.svc", "x", "*"}},
		{"remote.ip", vIPs},
	}
)

func genPolicies(p *picker) []Policy {
	var out []Policy
	for i, n := 0, 1+p.n(4); i < n; i++ {
		spec := &securityv1beta1.AuthorizationPolicy{
			Action: []securityv1beta1.AuthorizationPolicy_Action{
				securityv1beta1.AuthorizationPolicy_ALLOW, securityv1beta1.AuthorizationPolicy_DENY,
				securityv1beta1.AuthorizationPolicy_AUDIT, securityv1beta1.AuthorizationPolicy_CUSTOM,
			}[p.n(4)],
		}
		if spec.Action == securityv1beta1.AuthorizationPolicy_CUSTOM {
			spec.ActionDetail = &securityv1beta1.AuthorizationPolicy_Provider{Provider: &securityv1beta1.AuthorizationPolicy_ExtensionProvider{Name: "ext"}}
		}
		if p.n(4) == 0 {
			spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": []string{"httpbin", "other"}[p.n(2)]}}
		}
		for j, nr := 0, p.n(3); j < nr; j++ {
			ru := &securityv1beta1.Rule{}
			for k, nf := 0, p.n(3); k < nf; k++ {
				ru.From = append(ru.From, &securityv1beta1.Rule_From{Source: &securityv1beta1.Source{
					Principals: p.some(vPrincipals), NotPrincipals: p.some(vPrincipals),
					Namespaces: p.some(vNamespaces), NotNamespaces: p.some(vNamespaces),
					RequestPrincipals: p.some(vReqP), NotRequestPrincipals: p.some(vReqP),
					IpBlocks: p.some(vIPs), NotIpBlocks: p.some(vIPs),
					RemoteIpBlocks: p.some(vIPs), NotRemoteIpBlocks: p.some(vIPs),
				}})
			}
			for k, nt := 0, p.n(3); k < nt; k++ {
				ru.To = append(ru.To, &securityv1beta1.Rule_To{Operation: &securityv1beta1.Operation{
					Hosts: p.some(vHosts), NotHosts: p.some(vHosts),
					Ports: p.some(vPorts), NotPorts: p.some(vPorts),
					Methods: p.some(vMethods), NotMethods: p.some(vMethods),
					Paths: p.some(vPaths), NotPaths: p.some(vPaths),
				}})
			}
			for k, nw := 0, p.n(3); k < nw; k++ {
				c := vConds[p.n(len(vConds))]
				cond := &securityv1beta1.Condition{Key: c.key, Values: p.some(c.vals), NotValues: p.some(c.vals)}
				if len(cond.Values)+len(cond.NotValues) == 0 {
					cond.Values = []string{c.vals[0]}
				}
				ru.When = append(ru.When, cond)
			}
			spec.Rules = append(spec.Rules, ru)
		}
		ns := []string{"foo", "foo", "istio-system", "bar"}[p.n(4)]
		out = append(out, Policy{Namespace: ns, Name: "p" + string(rune('a'+i)), Spec: spec})
	}
	return out
}

func genRequest(p *picker) Request {
	r := Request{
		SourceIP:        netip.MustParseAddr([]string{"10.0.0.1", "192.168.1.1", "2001:db8::1", "::ffff:10.0.0.1"}[p.n(4)]),
		DestinationIP:   netip.MustParseAddr("10.0.0.2"),
		DestinationPort: []uint32{8000, 9000, 7000}[p.n(3)],
		Principal:       []string{"", sleepPeer, "cluster.local/ns/bar/sa/x", "td/ns/fo/sa/y"}[p.n(4)],
		IsHTTP:          p.n(4) != 0,
	}
	if p.n(2) == 0 {
		r.RemoteIP = netip.MustParseAddr([]string{"192.168.7.7", "10.9.9.9"}[p.n(2)])
	}
	if r.Principal != "" {
		r.SNI = []string{"a.svc", "x", ""}[p.n(3)]
	}
	if !r.IsHTTP {
		return r
	}
	r.Method = []string{"GET", "get", "POST", "PATCH", "DELETE", "Get", "patch", "post"}[p.n(8)]
	r.Path = []string{"/admin", "/admin/x", "/api/v1", "/api/v1/x", "/info", "/a/info", "/", "/admin?x=1", "/ADMIN", "/Admin/x", "/API/v1", "/a/INFO"}[p.n(12)]
	r.Host = []string{"httpbin.foo", "HTTPBIN.foo:80", "other.example.", "x.foo", "httpbin.foo:8000"}[p.n(5)]
	r.Headers = http.Header{}
	switch p.n(8) {
	case 1:
		r.Headers["X-A"] = []string{"1"}
	case 2:
		r.Headers["X-A"] = []string{"1", "2"}
	case 3:
		r.Headers["X-A"] = []string{""}
	case 4:
		r.Headers["X-A"] = []string{"1,2"}
	case 5:
		r.Headers["X-A"] = []string{"2, 1 "}
	case 6:
		r.Headers["X-A"] = []string{"3,,\t1", "2"}
	case 7:
		r.Headers["X-A"] = []string{"1,2", "3"}
	}
	switch p.n(3) {
	case 1:
		r.Auth = &AuthInfo{Principal: "iss/sub", Claims: map[string]any{"iss": "iss", "sub": "sub", "groups": []any{"g1", "g3"}}}
	case 2:
		r.Auth = &AuthInfo{Principal: "other/sub", Claims: map[string]any{"iss": "other", "sub": "sub", "groups": "g2"}}
	}
	return r
}

// FuzzEvaluate checks that Evaluate never panics and agrees with the
// reference evaluator, in particular never allowing what it denies, and
// that Custom and the audit mark select what the reference selects.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 1, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1})
	f.Add([]byte("deny everything from bar unless GET /api on 8000 with a token"))
	f.Add([]byte{0, 2, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &picker{b: data}
		pols := genPolicies(p)
		e, err := Compile(pols, httpbin, Options{})
		if err != nil {
			t.Fatalf("generated policies must compile: %v", err)
		}
		for i := 0; i < 4; i++ {
			r := genRequest(p)
			got := e.Evaluate(&r)
			want := refDecide(pols, httpbin, &r)
			if got.Allowed && !want {
				t.Fatalf("engine allows what the reference denies\nrequest %+v\ndecision %+v\nexplain %+v", r, got, e.Explain(&r).Policies)
			}
			if got.Allowed != want {
				t.Fatalf("engine denies what the reference allows\nrequest %+v\ndecision %+v\nexplain %+v", r, got, e.Explain(&r).Policies)
			}
			if x := e.Explain(&r); x.Decision != got {
				t.Fatalf("Explain disagrees with Evaluate: %+v vs %+v", x.Decision, got)
			}
			if _, _, custom := e.Custom(&r); custom != refSelects(pols, httpbin, &r, securityv1beta1.AuthorizationPolicy_CUSTOM) {
				t.Fatalf("Custom selected = %v, reference says %v\nrequest %+v\nexplain %+v", custom, !custom, r, e.Explain(&r).Policies)
			}
			if want := refSelects(pols, httpbin, &r, securityv1beta1.AuthorizationPolicy_AUDIT); got.Audited != want {
				t.Fatalf("Audited = %v, reference says %v\nrequest %+v\nexplain %+v", got.Audited, want, r, e.Explain(&r).Policies)
			}
		}
	})
}
