package authz

import (
	"testing"

	"palisade.dev/palisade/internal/config"
)

// Sources of the cases, by the prefix of their names:
//
//	concepts   https://istio.io/latest/docs/concepts/security/#authorization
//	reference  https://istio.io/latest/docs/reference/config/security/authorization-policy/
//	conditions https://istio.io/latest/docs/reference/config/security/conditions/
//	http-task  https://istio.io/latest/docs/tasks/security/authorization/authz-http/
//	tcp-task   https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/
//	jwt-task   https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/
//	deny-task  https://istio.io/latest/docs/tasks/security/authorization/authz-deny/
//	ingress-task https://istio.io/latest/docs/tasks/security/authorization/authz-ingress/
//	normalization https://istio.io/latest/docs/reference/config/security/normalization/
//	ISTIO-SECURITY-* https://istio.io/latest/news/security/
//	spec       Palisade's own rule where it is stricter than Istio: fail
//	           safe, never widen access; every path trick, mixed case
//	           included, is refused by a DENY on /admin* (doc.go)
type docCase struct {
	name  string
	w     *config.WorkloadRef // default httpbin
	pols  []pol
	req   Request
	allow bool
	// policy, when set, is the name of the policy that decided.
	policy string
}

const (
	allowNothing = `{}`
	allowAll     = `{rules: [{}]}`
	denyAll      = `{action: DENY, rules: [{}]}`
)

func docCases() []docCase {
	get := H("GET", "/")
	return []docCase{
		// Decision order and defaults.
		{name: "concepts: no policy allows", req: get, allow: true},
		{name: "concepts: ALLOW with no rules (allow-nothing) denies all", pols: []pol{P(allowNothing)}, req: get},
		{name: "concepts: action defaults to ALLOW", pols: []pol{P(`{rules: [{to: [{operation: {methods: [GET]}}]}]}`)}, req: get, allow: true},
		{name: "concepts: ALLOW with {} rule (allow-all) allows all", pols: []pol{P(allowAll)}, req: H("DELETE", "/x", plain()), allow: true},
		{name: "concepts: DENY with {} rule (deny-all) denies all", pols: []pol{P(denyAll)}, req: get},
		{name: "reference: DENY with no rules matches nothing", pols: []pol{P(`{action: DENY}`)}, req: get, allow: true},
		{name: "reference: AUDIT does not decide", pols: []pol{P(`{action: AUDIT, rules: [{}]}`)}, req: get, allow: true},
		{name: "reference: AUDIT with ALLOW-nothing still denies", pols: []pol{P(`{action: AUDIT, rules: [{}]}`), P(allowNothing)}, req: get},
		{name: "reference: CUSTOM does not decide in Evaluate", pols: []pol{P(`{action: CUSTOM, provider: {name: ext}, rules: [{}]}`)}, req: get, allow: true},
		{name: "concepts: DENY wins over ALLOW", pols: []pol{P(allowAll), P(denyAll)}, req: get, policy: "p1"},
		{name: "concepts: ALLOW present but unmatched denies", pols: []pol{P(`{rules: [{to: [{operation: {methods: [POST]}}]}]}`)}, req: get},
		{name: "concepts: any ALLOW policy matching allows", pols: []pol{P(`{rules: [{to: [{operation: {methods: [POST]}}]}]}`), P(`{rules: [{to: [{operation: {methods: [GET]}}]}]}`)}, req: get, allow: true, policy: "p1"},
		{name: "concepts: DENY unmatched falls through to default allow", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}`)}, req: get, allow: true},
		{name: "concepts: DENY unmatched then ALLOW matched", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}`), P(allowAll)}, req: get, allow: true},
		{name: "reference: a rule with empty from/to lists matches", pols: []pol{P(`{action: DENY, rules: [{from: [], to: [], when: []}]}`)}, req: get},
		{name: "reference: a source with no fields matches any source", pols: []pol{P(`{rules: [{from: [{source: {}}]}]}`)}, req: H("GET", "/", plain()), allow: true},

		// Scope.
		{name: "concepts: root namespace policy applies mesh-wide", pols: []pol{PN("istio-system", denyAll)}, req: get},
		{name: "concepts: policy in another namespace does not apply", pols: []pol{PN("bar", denyAll)}, req: get, allow: true},
		{name: "concepts: selector matching the workload applies", pols: []pol{P(`{selector: {matchLabels: {app: httpbin}}, action: DENY, rules: [{}]}`)}, req: get},
		{name: "concepts: selector not matching does not apply", pols: []pol{P(`{selector: {matchLabels: {app: productpage}}, action: DENY, rules: [{}]}`)}, req: get, allow: true},
		{name: "concepts: selector needs every label", pols: []pol{P(`{selector: {matchLabels: {app: httpbin, version: v2}}, action: DENY, rules: [{}]}`)}, req: get, allow: true},
		{name: "concepts: root namespace selector selects across namespaces", pols: []pol{PN("istio-system", `{selector: {matchLabels: {app: httpbin}}, action: DENY, rules: [{}]}`)}, req: get},
		{name: "reference: targetRefs Service applies to its workloads", pols: []pol{P(`{targetRefs: [{kind: Service, group: "", name: httpbin}], action: DENY, rules: [{}]}`)}, req: get},
		{name: "reference: targetRefs other Service does not apply", pols: []pol{P(`{targetRefs: [{kind: Service, group: "", name: reviews}], action: DENY, rules: [{}]}`)}, req: get, allow: true},
		{name: "ingress-task: gateway selector in root namespace", w: &ingress, pols: []pol{PN("istio-system", `{selector: {matchLabels: {istio: ingressgateway}}, action: DENY, rules: [{}]}`)}, req: get},
		{name: "reference: targetRefs Gateway applies to the gateway", w: &ingress, pols: []pol{PN("istio-system", `{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: httpbin-gateway}], action: DENY, rules: [{}]}`)}, req: get},
		{name: "reference: sidecar policy does not apply to the gateway", w: &ingress, pols: []pol{P(denyAll)}, req: get, allow: true},

		// Rule structure.
		{name: "reference: from AND to: source matches, operation does not", pols: []pol{P(`{rules: [{from: [{source: {principals: ["` + sleepPeer + `"]}}], to: [{operation: {methods: [POST]}}]}]}`)}, req: get},
		{name: "reference: from AND to: both match", pols: []pol{P(`{rules: [{from: [{source: {principals: ["` + sleepPeer + `"]}}], to: [{operation: {methods: [GET]}}]}]}`)}, req: get, allow: true},
		{name: "reference: from entries are ORed", pols: []pol{P(`{rules: [{from: [{source: {principals: [a/ns/x/sa/y]}}, {source: {namespaces: [foo]}}]}]}`)}, req: get, allow: true},
		{name: "reference: to entries are ORed", pols: []pol{P(`{rules: [{to: [{operation: {methods: [POST]}}, {operation: {paths: ["/"]}}]}]}`)}, req: get, allow: true},
		{name: "reference: fields in one source are ANDed", pols: []pol{P(`{rules: [{from: [{source: {namespaces: [foo], ipBlocks: [192.168.0.0/16]}}]}]}`)}, req: get},
		{name: "reference: fields in one operation are ANDed", pols: []pol{P(`{rules: [{to: [{operation: {methods: [GET], paths: ["/admin"]}}]}]}`)}, req: get},
		{name: "reference: when conditions are ANDed", pols: []pol{P(`{rules: [{when: [{key: "request.headers[x-a]", values: ["1"]}, {key: "request.headers[x-b]", values: ["2"]}]}]}`)}, req: H("GET", "/", hdr("X-A", "1")), allow: false},
		{name: "reference: when conditions all match", pols: []pol{P(`{rules: [{when: [{key: "request.headers[x-a]", values: ["1"]}, {key: "request.headers[x-b]", values: ["2"]}]}]}`)}, req: H("GET", "/", hdr("X-A", "1"), hdr("X-B", "2")), allow: true},
		{name: "reference: rules are ORed", pols: []pol{P(`{rules: [{to: [{operation: {methods: [POST]}}]}, {to: [{operation: {methods: [GET]}}]}]}`)}, req: get, allow: true},
		{name: "reference: any value of a field may match", pols: []pol{P(`{rules: [{to: [{operation: {methods: [PUT, GET]}}]}]}`)}, req: get, allow: true},
		{name: "reference: value and notValue in one field", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/api/*"], notPaths: ["/api/private*"]}}]}]}`)}, req: H("GET", "/api/private/x")},
		{name: "reference: value and notValue in one field, allowed", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/api/*"], notPaths: ["/api/private*"]}}]}]}`)}, req: H("GET", "/api/public"), allow: true},

		// Source.principals (mTLS only).
		{name: "reference: principals exact", pols: []pol{P(`{rules: [{from: [{source: {principals: ["` + sleepPeer + `"]}}]}]}`)}, req: get, allow: true},
		{name: "reference: principals other identity", pols: []pol{P(`{rules: [{from: [{source: {principals: [cluster.local/ns/foo/sa/other]}}]}]}`)}, req: get},
		{name: "reference: principals prefix", pols: []pol{P(`{rules: [{from: [{source: {principals: ["cluster.local/ns/foo/*"]}}]}]}`)}, req: get, allow: true},
		{name: "reference: principals suffix", pols: []pol{P(`{rules: [{from: [{source: {principals: ["*/sa/sleep"]}}]}]}`)}, req: get, allow: true},
		{name: "reference: principals suffix no match", pols: []pol{P(`{rules: [{from: [{source: {principals: ["*/sa/admin"]}}]}]}`)}, req: get},
		{name: "reference: principals * matches any mTLS peer", pols: []pol{P(`{rules: [{from: [{source: {principals: ["*"]}}]}]}`)}, req: H("GET", "/", peer("other.td/ns/x/sa/y")), allow: true},
		{name: "reference: principals * requires mTLS", pols: []pol{P(`{rules: [{from: [{source: {principals: ["*"]}}]}]}`)}, req: H("GET", "/", plain())},
		{name: "reference: principals no spiffe:// prefix in values", pols: []pol{P(`{rules: [{from: [{source: {principals: ["spiffe://` + sleepPeer + `"]}}]}]}`)}, req: get},
		{name: "reference: notPrincipals excludes", pols: []pol{P(`{rules: [{from: [{source: {notPrincipals: ["` + sleepPeer + `"]}}]}]}`)}, req: get},
		{name: "reference: notPrincipals other peer allowed", pols: []pol{P(`{rules: [{from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/bad]}}]}]}`)}, req: get, allow: true},
		{name: "deny-task: DENY notPrincipals denies other peers", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/good]}}]}]}`)}, req: get},

		// Source.namespaces.
		{name: "reference: namespaces from principal", pols: []pol{P(`{rules: [{from: [{source: {namespaces: [foo]}}]}]}`)}, req: get, allow: true},
		{name: "reference: namespaces other", pols: []pol{P(`{rules: [{from: [{source: {namespaces: [bar]}}]}]}`)}, req: get},
		{name: "reference: namespaces is a whole segment", pols: []pol{P(`{rules: [{from: [{source: {namespaces: [fo]}}]}]}`)}, req: get},
		{name: "reference: namespaces prefix", pols: []pol{P(`{rules: [{from: [{source: {namespaces: ["prod-*"]}}]}]}`)}, req: H("GET", "/", peer("cluster.local/ns/prod-eu/sa/a")), allow: true},
		{name: "reference: namespaces suffix", pols: []pol{P(`{rules: [{from: [{source: {namespaces: ["*-test"]}}]}]}`)}, req: H("GET", "/", peer("cluster.local/ns/prod-eu/sa/a"))},
		{name: "reference: notNamespaces excludes", pols: []pol{P(`{rules: [{from: [{source: {notNamespaces: [foo]}}]}]}`)}, req: get},
		{name: "deny-task: DENY notNamespaces denies other namespaces", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notNamespaces: [foo]}}]}]}`)}, req: H("GET", "/", peer("cluster.local/ns/bar/sa/x"))},
		{name: "deny-task: DENY notNamespaces lets own namespace", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notNamespaces: [foo]}}]}]}`)}, req: get, allow: true},

		// Source.serviceAccounts.
		{name: "reference: serviceAccounts ns/sa", pols: []pol{P(`{rules: [{from: [{source: {serviceAccounts: [foo/sleep]}}]}]}`)}, req: get, allow: true},
		{name: "reference: serviceAccounts bare name is the policy namespace", pols: []pol{P(`{rules: [{from: [{source: {serviceAccounts: [sleep]}}]}]}`)}, req: get, allow: true},
		{name: "reference: serviceAccounts bare name other namespace", pols: []pol{P(`{rules: [{from: [{source: {serviceAccounts: [sleep]}}]}]}`)}, req: H("GET", "/", peer("cluster.local/ns/bar/sa/sleep"))},
		{name: "reference: notServiceAccounts excludes", pols: []pol{P(`{rules: [{from: [{source: {notServiceAccounts: [foo/sleep]}}]}]}`)}, req: get},
		{name: "reference: serviceAccounts need mTLS", pols: []pol{P(`{rules: [{from: [{source: {serviceAccounts: [foo/sleep]}}]}]}`)}, req: H("GET", "/", plain())},

		// Source.trustDomains.
		{name: "reference: trustDomains exact", pols: []pol{P(`{rules: [{from: [{source: {trustDomains: [cluster.local]}}]}]}`)}, req: get, allow: true},
		{name: "reference: trustDomains other", pols: []pol{P(`{rules: [{from: [{source: {trustDomains: [other.td]}}]}]}`)}, req: get},
		{name: "reference: notTrustDomains excludes", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notTrustDomains: [cluster.local]}}]}]}`)}, req: H("GET", "/", peer("evil.td/ns/foo/sa/sleep"))},

		// Source.ipBlocks and remoteIpBlocks.
		{name: "reference: ipBlocks single IP", pols: []pol{P(`{rules: [{from: [{source: {ipBlocks: [10.0.0.1]}}]}]}`)}, req: get, allow: true},
		{name: "reference: ipBlocks CIDR", pols: []pol{P(`{rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]}`)}, req: get, allow: true},
		{name: "reference: ipBlocks CIDR no match", pols: []pol{P(`{rules: [{from: [{source: {ipBlocks: [203.0.113.0/24]}}]}]}`)}, req: get},
		{name: "reference: notIpBlocks excludes", pols: []pol{P(`{rules: [{from: [{source: {notIpBlocks: [10.0.0.0/24]}}]}]}`)}, req: get},
		{name: "reference: ipBlocks IPv6", pols: []pol{P(`{rules: [{from: [{source: {ipBlocks: ["2001:db8::/32"]}}]}]}`)}, req: H("GET", "/", src("2001:db8::7")), allow: true},
		{name: "reference: ipBlocks IPv4-mapped source", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]}`)}, req: H("GET", "/", src("::ffff:10.1.2.3"))},
		{name: "reference: ipBlocks reads the peer, not X-Forwarded-For", pols: []pol{P(`{rules: [{from: [{source: {ipBlocks: [203.0.113.4]}}]}]}`)}, req: H("GET", "/", remote("203.0.113.4"))},
		{name: "ingress-task: remoteIpBlocks allows original client", w: &ingress, pols: []pol{PN("istio-system", `{selector: {matchLabels: {istio: ingressgateway}}, rules: [{from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]}]}`)}, req: H("GET", "/", remote("203.0.113.4")), allow: true},
		{name: "ingress-task: remoteIpBlocks other client denied", w: &ingress, pols: []pol{PN("istio-system", `{selector: {matchLabels: {istio: ingressgateway}}, rules: [{from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]}]}`)}, req: H("GET", "/", remote("198.51.100.9"))},
		{name: "ingress-task: DENY notRemoteIpBlocks", w: &ingress, pols: []pol{PN("istio-system", `{action: DENY, rules: [{from: [{source: {notRemoteIpBlocks: [203.0.113.0/24]}}]}]}`)}, req: H("GET", "/", remote("198.51.100.9"))},
		{name: "ingress-task: remote.ip without X-Forwarded-For is the peer", w: &ingress, pols: []pol{PN("istio-system", `{rules: [{from: [{source: {remoteIpBlocks: [10.0.0.1]}}]}]}`)}, req: get, allow: true},

		// Source.requestPrincipals (HTTP, JWT).
		{name: "jwt-task: requestPrincipals iss/sub", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: [testing@secure.istio.io/testing@secure.istio.io]}}]}]}`)}, req: H("GET", "/", jwt("testing@secure.istio.io", "testing@secure.istio.io", nil)), allow: true},
		{name: "jwt-task: requestPrincipals without token", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`)}, req: get},
		{name: "jwt-task: requestPrincipals * any token", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`)}, req: H("GET", "/", jwt("https://issuer.example", "u1", nil)), allow: true},
		{name: "reference: requestPrincipals issuer URL with *", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}]}]}`)}, req: H("GET", "/", jwt("https://issuer.example", "u1", nil)), allow: true},
		{name: "reference: requestPrincipals */sub", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: ["*/u1"]}}]}]}`)}, req: H("GET", "/", jwt("https://issuer.example", "u1", nil)), allow: true},
		{name: "reference: requestPrincipals iss/* other issuer", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: ["https://other.example/*"]}}]}]}`)}, req: H("GET", "/", jwt("https://issuer.example", "u1", nil))},
		{name: "reference: requestPrincipals wildcard does not span iss and sub", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: ["https://issuer.*"]}}]}]}`)}, req: H("GET", "/", jwt("https://issuer.example", "u1", nil))},
		{name: "jwt-task: DENY notRequestPrincipals * denies requests without token", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}`)}, req: get},
		{name: "jwt-task: DENY notRequestPrincipals * lets tokens through", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", nil)), allow: true},
		{name: "reference: notRequestPrincipals excludes one subject", pols: []pol{P(`{rules: [{from: [{source: {notRequestPrincipals: [iss/bad]}}]}]}`)}, req: H("GET", "/", jwt("iss", "bad", nil))},

		// Operation.hosts.
		{name: "reference: hosts exact", pols: []pol{P(`{rules: [{to: [{operation: {hosts: [httpbin.foo]}}]}]}`)}, req: get, allow: true},
		{name: "reference: hosts case-insensitive", pols: []pol{P(`{rules: [{to: [{operation: {hosts: [HTTPBIN.foo]}}]}]}`)}, req: H("GET", "/", host("httpbin.FOO")), allow: true},
		{name: "reference: hosts other host", pols: []pol{P(`{rules: [{to: [{operation: {hosts: [httpbin.foo]}}]}]}`)}, req: H("GET", "/", host("evil.foo"))},
		{name: "reference: hosts suffix", pols: []pol{P(`{rules: [{to: [{operation: {hosts: ["*.example.com"]}}]}]}`)}, req: H("GET", "/", host("api.example.com")), allow: true},
		{name: "reference: hosts suffix does not match the apex", pols: []pol{P(`{rules: [{to: [{operation: {hosts: ["*.example.com"]}}]}]}`)}, req: H("GET", "/", host("example.com"))},
		{name: "reference: hosts prefix", pols: []pol{P(`{rules: [{to: [{operation: {hosts: ["httpbin.*"]}}]}]}`)}, req: get, allow: true},
		{name: "reference: notHosts", pols: []pol{P(`{rules: [{to: [{operation: {notHosts: [httpbin.foo]}}]}]}`)}, req: get},
		{name: "best-practices: ALLOW hosts exact does not match host:port", pols: []pol{P(`{rules: [{to: [{operation: {hosts: [httpbin.foo]}}]}]}`)}, req: H("GET", "/", host("httpbin.foo:8000"))},
		{name: "best-practices: ALLOW host:* matches any port", pols: []pol{P(`{rules: [{to: [{operation: {hosts: [httpbin.foo, "httpbin.foo:*"]}}]}]}`)}, req: H("GET", "/", host("httpbin.foo:8000")), allow: true},

		// Operation.ports.
		{name: "reference: ports", pols: []pol{P(`{rules: [{to: [{operation: {ports: ["8000"]}}]}]}`)}, req: get, allow: true},
		{name: "reference: ports other", pols: []pol{P(`{rules: [{to: [{operation: {ports: ["8080"]}}]}]}`)}, req: get},
		{name: "reference: notPorts", pols: []pol{P(`{rules: [{to: [{operation: {notPorts: ["8000"]}}]}]}`)}, req: get},
		{name: "deny-task: DENY notPorts", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {notPorts: ["8000"]}}]}]}`)}, req: H("GET", "/", port(9090))},

		// Operation.methods.
		{name: "http-task: methods GET", pols: []pol{P(`{rules: [{to: [{operation: {methods: [GET]}}]}]}`)}, req: get, allow: true},
		{name: "http-task: methods GET denies POST", pols: []pol{P(`{rules: [{to: [{operation: {methods: [GET]}}]}]}`)}, req: H("POST", "/")},
		{name: "reference: methods prefix", pols: []pol{P(`{rules: [{to: [{operation: {methods: ["P*"]}}]}]}`)}, req: H("PATCH", "/"), allow: true},
		{name: "reference: notMethods", pols: []pol{P(`{rules: [{to: [{operation: {notMethods: [DELETE]}}]}]}`)}, req: H("DELETE", "/")},
		{name: "normalization: ALLOW methods are exact (lower-case get)", pols: []pol{P(`{rules: [{to: [{operation: {methods: [GET]}}]}]}`)}, req: H("get", "/")},
		{name: "normalization: DENY methods ignore case", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}`)}, req: H("delete", "/")},
		{name: "ISTIO-SECURITY-2026-007 (GHSA-w44g-8m76-8gc5): DENY notMethods [GET] denies lower-case get", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {notMethods: [GET]}}]}]}`)}, req: H("get", "/")},
		{name: "ISTIO-SECURITY-2026-007 (GHSA-w44g-8m76-8gc5): DENY notMethods [GET] lets GET through", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {notMethods: [GET]}}]}]}`)}, req: get, allow: true},
		{name: "ISTIO-SECURITY-2026-007 (GHSA-w44g-8m76-8gc5): DENY methods prefix denies a lower-case variant", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {methods: ["P*"]}}]}]}`)}, req: H("patch", "/")},
		{name: "ISTIO-SECURITY-2026-007 (GHSA-w44g-8m76-8gc5): DENY methods * with notMethods [GET] denies get", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {methods: ["*"], notMethods: [GET, HEAD]}}]}]}`)}, req: H("Get", "/")},
		{name: "ISTIO-SECURITY-2026-007 (GHSA-w44g-8m76-8gc5): ALLOW notMethods [DELETE] does not admit delete", pols: []pol{P(`{rules: [{to: [{operation: {notMethods: [DELETE]}}]}]}`)}, req: H("delete", "/")},
		{name: "ISTIO-SECURITY-2026-007 (GHSA-w44g-8m76-8gc5): ALLOW notMethods [DELETE] admits GET", pols: []pol{P(`{rules: [{to: [{operation: {notMethods: [DELETE]}}]}]}`)}, req: get, allow: true},
		{name: "ISTIO-SECURITY-2026-007 (GHSA-w44g-8m76-8gc5): ALLOW methods prefix is exact", pols: []pol{P(`{rules: [{to: [{operation: {methods: ["P*"]}}]}]}`)}, req: H("patch", "/")},
		{name: "reference: gRPC is always POST", pols: []pol{P(`{rules: [{to: [{operation: {methods: [POST], paths: ["/grpc.health.v1.Health/Check"]}}]}]}`)}, req: H("POST", "/grpc.health.v1.Health/Check"), allow: true},

		// Operation.paths.
		{name: "http-task: paths exact", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/headers"]}}]}]}`)}, req: H("GET", "/headers"), allow: true},
		{name: "http-task: paths exact no match", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/headers"]}}]}]}`)}, req: H("GET", "/headers/x")},
		{name: "reference: paths prefix", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/api/*"]}}]}]}`)}, req: H("GET", "/api/v1/x"), allow: true},
		{name: "reference: paths suffix", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["*/info"]}}]}]}`)}, req: H("GET", "/a/b/info"), allow: true},
		{name: "reference: paths * any path", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["*"]}}]}]}`)}, req: H("GET", "/x"), allow: true},
		{name: "reference: paths are case-sensitive", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/headers"]}}]}]}`)}, req: H("GET", "/Headers")},
		{name: "spec: DENY paths ignore case, a case-insensitive backend reads /ADMIN as /admin", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`)}, req: H("GET", "/ADMIN/x")},
		{name: "spec: DENY notPaths are exact, so a case variant of the exception is denied", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {notPaths: ["/healthz"]}}]}]}`)}, req: H("GET", "/HEALTHZ")},
		{name: "spec: DENY notPaths exact, the exception itself passes", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {notPaths: ["/healthz"]}}]}]}`)}, req: H("GET", "/healthz"), allow: true},
		{name: "spec: ALLOW notPaths ignore case, so /ADMIN is not admitted by notPaths /admin*", pols: []pol{P(`{rules: [{to: [{operation: {notPaths: ["/admin*"]}}]}]}`)}, req: H("GET", "/ADMIN")},
		{name: "reference: notPaths", pols: []pol{P(`{rules: [{to: [{operation: {notPaths: ["/admin*"]}}]}]}`)}, req: H("GET", "/admin/x")},
		{name: "normalization: paths compare without the query", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/headers"]}}]}]}`)}, req: H("GET", "/headers?a=b"), allow: true},
		{name: "reference: paths template {*} one segment", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/foo/{*}"]}}]}]}`)}, req: H("GET", "/foo/bar"), allow: true},
		{name: "reference: paths template {*} not two segments", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/foo/{*}"]}}]}]}`)}, req: H("GET", "/foo/bar/baz")},
		{name: "reference: paths template {*} not empty", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/foo/{*}"]}}]}]}`)}, req: H("GET", "/foo/")},
		{name: "reference: paths template {**} the rest", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/foo/{*}/bar/{**}"]}}]}]}`)}, req: H("GET", "/foo/buzz/bar/baz"), allow: true},
		{name: "reference: paths template {**} may be empty", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/foo/{*}/bar/{**}"]}}]}]}`)}, req: H("GET", "/foo/buzz/bar/"), allow: true},
		{name: "reference: paths template {**}/ needs the trailing slash", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/foo/{**}/"]}}]}]}`)}, req: H("GET", "/foo/bar")},
		{name: "reference: paths template {**}/ matches /foo//", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/foo/{**}/"]}}]}]}`)}, req: H("GET", "/foo//"), allow: true},

		// Conditions.
		{name: "conditions: request.headers values", pols: []pol{P(`{rules: [{when: [{key: "request.headers[version]", values: [v1, v2]}]}]}`)}, req: H("GET", "/", hdr("Version", "v2")), allow: true},
		{name: "conditions: request.headers name case-insensitive", pols: []pol{P(`{rules: [{when: [{key: "request.headers[X-Custom-Token]", values: [abc]}]}]}`)}, req: H("GET", "/", func(r *Request) { r.Headers["x-custom-token"] = []string{"abc"} }), allow: true},
		{name: "conditions: request.headers absent", pols: []pol{P(`{rules: [{when: [{key: "request.headers[version]", values: [v1]}]}]}`)}, req: get},
		{name: "conditions: request.headers * presence", pols: []pol{P(`{rules: [{when: [{key: "request.headers[x-token]", values: ["*"]}]}]}`)}, req: H("GET", "/", hdr("X-Token", "")), allow: true},
		{name: "conditions: request.headers notValues absent header matches", pols: []pol{P(`{action: DENY, rules: [{when: [{key: "request.headers[x-env]", notValues: [prod]}]}]}`)}, req: get},
		{name: "conditions: request.headers notValues", pols: []pol{P(`{action: DENY, rules: [{when: [{key: "request.headers[x-env]", notValues: [prod]}]}]}`)}, req: H("GET", "/", hdr("X-Env", "prod")), allow: true},
		{name: "conditions: request.headers prefix", pols: []pol{P(`{rules: [{when: [{key: "request.headers[user-agent]", values: ["curl/*"]}]}]}`)}, req: H("GET", "/", hdr("User-Agent", "curl/8.1")), allow: true},
		{name: "conditions: repeated header, ALLOW needs every value", pols: []pol{P(`{rules: [{when: [{key: "request.headers[x-role]", values: [reader]}]}]}`)}, req: H("GET", "/", hdr("X-Role", "reader", "admin"))},
		{name: "conditions: repeated header, DENY needs one value", pols: []pol{P(`{action: DENY, rules: [{when: [{key: "request.headers[x-role]", values: [banned]}]}]}`)}, req: H("GET", "/", hdr("X-Role", "reader", "banned"))},
		{name: "conditions: request.headers[:authority]", pols: []pol{P(`{rules: [{when: [{key: "request.headers[:authority]", values: [httpbin.foo]}]}]}`)}, req: get, allow: true},
		{name: "conditions: source.ip", pols: []pol{P(`{rules: [{when: [{key: source.ip, values: [10.0.0.0/16]}]}]}`)}, req: get, allow: true},
		{name: "conditions: source.ip notValues", pols: []pol{P(`{rules: [{when: [{key: source.ip, notValues: [10.0.0.1]}]}]}`)}, req: get},
		{name: "conditions: remote.ip", pols: []pol{P(`{rules: [{when: [{key: remote.ip, values: [203.0.113.4]}]}]}`)}, req: H("GET", "/", remote("203.0.113.4")), allow: true},
		{name: "conditions: source.namespace", pols: []pol{P(`{rules: [{when: [{key: source.namespace, values: [foo]}]}]}`)}, req: get, allow: true},
		{name: "conditions: source.namespace notValues", pols: []pol{P(`{rules: [{when: [{key: source.namespace, notValues: [foo]}]}]}`)}, req: get},
		{name: "conditions: source.principal", pols: []pol{P(`{rules: [{when: [{key: source.principal, values: ["` + sleepPeer + `"]}]}]}`)}, req: get, allow: true},
		{name: "conditions: request.auth.principal", pols: []pol{P(`{rules: [{when: [{key: request.auth.principal, values: [iss/sub]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", nil)), allow: true},
		{name: "conditions: request.auth.audiences", pols: []pol{P(`{rules: [{when: [{key: request.auth.audiences, values: [bookstore.example]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"aud": []any{"other", "bookstore.example"}})), allow: true},
		{name: "conditions: request.auth.audiences no match", pols: []pol{P(`{rules: [{when: [{key: request.auth.audiences, values: [bookstore.example]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"aud": "other"}))},
		{name: "conditions: request.auth.presenter", pols: []pol{P(`{rules: [{when: [{key: request.auth.presenter, values: [app-123]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"azp": "app-123"})), allow: true},
		{name: "jwt-task: request.auth.claims[groups] list claim", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[groups]", values: [group1]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"groups": []any{"group1", "group2"}})), allow: true},
		{name: "jwt-task: request.auth.claims[groups] not in list", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[groups]", values: [group1]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"groups": []any{"group2"}}))},
		{name: "conditions: request.auth.claims string claim", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[iss]", values: ["https://accounts.example"]}]}]}`)}, req: H("GET", "/", jwt("https://accounts.example", "u", nil)), allow: true},
		{name: "conditions: request.auth.claims nested", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[nested][key1]", values: [valueA]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"nested": map[string]any{"key1": []any{"valueA", "valueB"}}})), allow: true},
		{name: "conditions: request.auth.claims nested missing", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[nested][key2]", values: [valueA]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"nested": map[string]any{"key1": "valueA"}}))},
		{name: "conditions: request.auth.claims non-string never matches", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[admin]", values: ["true"]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"admin": true}))},
		{name: "conditions: request.auth.claims notValues excludes any element", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[groups]", notValues: [banned]}]}]}`)}, req: H("GET", "/", jwt("iss", "sub", map[string]any{"groups": []any{"ok", "banned"}}))},
		{name: "conditions: request.auth.claims without token", pols: []pol{P(`{rules: [{when: [{key: "request.auth.claims[groups]", values: [group1]}]}]}`)}, req: get},
		{name: "conditions: destination.ip", pols: []pol{P(`{rules: [{when: [{key: destination.ip, values: [10.0.0.2]}]}]}`)}, req: get, allow: true},
		{name: "conditions: destination.ip other", pols: []pol{P(`{rules: [{when: [{key: destination.ip, values: [10.9.0.0/16]}]}]}`)}, req: H("GET", "/", dst("10.0.0.2"))},
		{name: "conditions: destination.port", pols: []pol{P(`{rules: [{when: [{key: destination.port, values: ["8000"]}]}]}`)}, req: get, allow: true},
		{name: "conditions: destination.port notValues", pols: []pol{P(`{rules: [{when: [{key: destination.port, notValues: ["8000"]}]}]}`)}, req: get},
		{name: "conditions: connection.sni", pols: []pol{P(`{rules: [{when: [{key: connection.sni, values: ["*.httpbin.foo.svc.cluster.local"]}]}]}`)}, req: get, allow: true},
		{name: "conditions: connection.sni other", pols: []pol{P(`{rules: [{when: [{key: connection.sni, values: [www.example.com]}]}]}`)}, req: get},
		{name: "conditions: connection.sni of the request's own handshake", pols: []pol{P(`{rules: [{when: [{key: connection.sni, values: [www.example.com]}]}]}`)}, req: H("GET", "/", sni("www.example.com")), allow: true},

		// TCP.
		{name: "tcp-task: ALLOW ports on TCP", pols: []pol{P(`{rules: [{to: [{operation: {ports: ["9000", "9001"]}}]}]}`)}, req: T(), allow: true},
		{name: "tcp-task: ALLOW ports on TCP, other port", pols: []pol{P(`{rules: [{to: [{operation: {ports: ["9000", "9001"]}}]}]}`)}, req: T(port(9002))},
		{name: "tcp-task: ALLOW with methods never matches TCP", pols: []pol{P(`{rules: [{to: [{operation: {methods: [GET], ports: ["9000"]}}]}]}`)}, req: T()},
		{name: "tcp-task: DENY with methods denies all TCP on the port", pols: []pol{P(allowAll), P(`{action: DENY, rules: [{to: [{operation: {methods: [GET], ports: ["9000"]}}]}]}`)}, req: T()},
		{name: "tcp-task: DENY with methods and ports, other port allowed", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {methods: [GET], ports: ["9000"]}}]}]}`)}, req: T(port(9001)), allow: true},
		{name: "tcp-task: ALLOW principals on TCP", pols: []pol{P(`{rules: [{from: [{source: {principals: ["` + sleepPeer + `"]}}]}]}`)}, req: T(), allow: true},
		{name: "tcp-task: ALLOW namespaces on TCP", pols: []pol{P(`{rules: [{from: [{source: {namespaces: [foo]}}], to: [{operation: {ports: ["9000"]}}]}]}`)}, req: T(), allow: true},
		{name: "tcp-task: ALLOW requestPrincipals never matches TCP", pols: []pol{P(`{rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`)}, req: T()},
		{name: "tcp-task: ALLOW request.headers condition never matches TCP", pols: []pol{P(`{rules: [{when: [{key: "request.headers[x]", values: ["*"]}]}]}`)}, req: T()},
		{name: "tcp-task: ALLOW rule with HTTP field, other rule still matches", pols: []pol{P(`{rules: [{to: [{operation: {paths: ["/x"]}}]}, {to: [{operation: {ports: ["9000"]}}]}]}`)}, req: T(), allow: true, policy: "p0"},
		{name: "tcp-task: DENY notPaths is ignored on TCP (denies)", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {notPaths: ["/public"]}}]}]}`)}, req: T()},
		{name: "tcp-task: DENY HTTP-only with mTLS field keeps the mTLS field", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {namespaces: [bar]}}], to: [{operation: {methods: [GET]}}]}]}`)}, req: T(), allow: true},
		{name: "tcp-task: DENY hosts on TCP denies", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {hosts: [evil.example]}}]}]}`)}, req: T()},
		{name: "tcp-task: ALLOW ipBlocks on TCP", pols: []pol{P(`{rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]}`)}, req: T(), allow: true},
		{name: "tcp-task: AUDIT with HTTP fields marks TCP, does not deny", pols: []pol{P(`{action: AUDIT, rules: [{to: [{operation: {methods: [GET]}}]}]}`)}, req: T(), allow: true},

		// Plaintext (mTLS-only attributes absent).
		{name: "ISTIO-SECURITY-2021-004: ALLOW notNamespaces does not admit plaintext", pols: []pol{P(`{rules: [{from: [{source: {notNamespaces: [foo]}}]}]}`)}, req: H("GET", "/", plain())},
		{name: "ISTIO-SECURITY-2021-004: ALLOW notPrincipals does not admit plaintext", pols: []pol{P(`{rules: [{from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/bad]}}]}]}`)}, req: H("GET", "/", plain())},
		{name: "ISTIO-SECURITY-2021-004: ALLOW source.namespace notValues does not admit plaintext", pols: []pol{P(`{rules: [{when: [{key: source.namespace, notValues: [foo]}]}]}`)}, req: H("GET", "/", plain())},
		{name: "ISTIO-SECURITY-2021-004: ALLOW notServiceAccounts does not admit plaintext", pols: []pol{P(`{rules: [{from: [{source: {notServiceAccounts: [foo/bad]}}]}]}`)}, req: H("GET", "/", plain())},
		{name: "ISTIO-SECURITY-2021-004: ALLOW connection.sni notValues does not admit plaintext", pols: []pol{P(`{rules: [{when: [{key: connection.sni, notValues: [x]}]}]}`)}, req: H("GET", "/", plain())},
		{name: "ISTIO-SECURITY-2021-004: ALLOW notNamespaces admits mTLS from elsewhere", pols: []pol{P(`{rules: [{from: [{source: {notNamespaces: [foo]}}]}]}`)}, req: H("GET", "/", peer("cluster.local/ns/bar/sa/x")), allow: true},
		{name: "ISTIO-SECURITY-2021-003: DENY namespaces does not catch plaintext", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {namespaces: [foo]}}]}]}`)}, req: H("GET", "/", plain()), allow: true},
		{name: "ISTIO-SECURITY-2021-003: DENY notPrincipals * rejects plaintext", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notPrincipals: ["*"]}}]}]}`)}, req: H("GET", "/", plain())},
		{name: "ISTIO-SECURITY-2021-003: DENY notNamespaces rejects plaintext", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notNamespaces: [foo]}}]}]}`)}, req: H("GET", "/", plain())},
		{name: "ISTIO-SECURITY-2021-003: DENY notPrincipals * lets mTLS through", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notPrincipals: ["*"]}}]}]}`)}, req: get, allow: true},
		{name: "ISTIO-SECURITY-2021-004: ALLOW namespaces * is the fix and needs mTLS", pols: []pol{P(`{rules: [{from: [{source: {namespaces: ["*"], notNamespaces: [foo]}}]}]}`)}, req: H("GET", "/", plain())},
		{name: "tcp-task: plaintext TCP with principals ALLOW denied", pols: []pol{P(`{rules: [{from: [{source: {principals: ["*"]}}]}]}`)}, req: T(plain())},

		// Security bulletins that are policy semantics (path tricks live in bypass_test.go).
		{name: "CVE-2021-39155 (ISTIO-SECURITY-2021-008): DENY host is case-insensitive", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {hosts: [httpbin.foo]}}]}]}`)}, req: H("GET", "/", host("Httpbin.Foo"))},
		{name: "CVE-2022-21679 (ISTIO-SECURITY-2022-001): ALLOW hosts is never always-true", pols: []pol{P(`{rules: [{to: [{operation: {hosts: [allowed.example]}}]}]}`)}, req: H("GET", "/", host("other.example"))},
		{name: "CVE-2022-21679 (ISTIO-SECURITY-2022-001): DENY notHosts is never always-false", pols: []pol{P(`{action: DENY, rules: [{to: [{operation: {notHosts: [allowed.example]}}]}]}`)}, req: H("GET", "/", host("other.example"))},
		{name: "CVE-2026-39350: serviceAccounts dot is not a regex (ALLOW)", pols: []pol{P(`{rules: [{from: [{source: {serviceAccounts: [cert-manager/cert-manager.io]}}]}]}`)}, req: H("GET", "/", peer("cluster.local/ns/cert-manager/sa/cert-manager-io"))},
		{name: "CVE-2026-39350: serviceAccounts dot is not a regex (DENY variant still exact)", pols: []pol{P(`{action: DENY, rules: [{from: [{source: {notServiceAccounts: [cert-manager/cert-manager.io]}}]}]}`)}, req: H("GET", "/", peer("cluster.local/ns/cert-manager/sa/cert-managerXio"))},
		{name: "ISTIO-SECURITY-2021-002: ports are the listener's own port", w: &ingress, pols: []pol{PN("istio-system", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin"], ports: ["8080"]}}]}]}`)}, req: H("GET", "/admin", port(8080))},
		{name: "regex-safety: principals value with regex metacharacters is literal", pols: []pol{P(`{rules: [{from: [{source: {principals: ["cluster.local/ns/foo/sa/.*"]}}]}]}`)}, req: get},
		{name: "regex-safety: namespaces value with regex metacharacters is literal", pols: []pol{P(`{rules: [{from: [{source: {namespaces: ["f.o"]}}]}]}`)}, req: get},
		{name: "regex-safety: header value with regex metacharacters is literal", pols: []pol{P(`{rules: [{when: [{key: "request.headers[x]", values: ["a|b"]}]}]}`)}, req: H("GET", "/", hdr("X", "a"))},
	}
}

func TestDocCases(t *testing.T) {
	cases := docCases()
	if len(cases) < 150 {
		t.Fatalf("want at least 150 documented cases, have %d", len(cases))
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			w := httpbin
			if tc.w != nil {
				w = *tc.w
			}
			e := compileT(t, tc.pols, w, Options{})
			r := tc.req
			d := e.Evaluate(&r)
			if d.Allowed != tc.allow {
				t.Fatalf("Allowed = %v, want %v (decision %+v)\nexplain: %+v", d.Allowed, tc.allow, d, e.Explain(&r).Policies)
			}
			if tc.policy != "" && d.Policy.Name != tc.policy {
				t.Errorf("decided by %q, want %q", d.Policy.Name, tc.policy)
			}
			if x := e.Explain(&r); x.Decision != d {
				t.Errorf("Explain decision %+v != Evaluate %+v", x.Decision, d)
			}
		})
	}
}
