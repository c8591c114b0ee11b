package config

import (
	"errors"
	"strings"
	"testing"
)

// doc builds a document whose spec body starts on line 6.
func doc(apiVersion, kind, spec string) string {
	return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: x\nspec:\n" + spec
}

const (
	sec = "security.istio.io/v1"
	net = "networking.istio.io/v1"
	pal = "palisade.dev/v1alpha1"
)

// fieldErrors flattens joined errors into the FieldErrors they hold.
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, fe)
		}
	}
	walk(err)
	return out
}

type brokenCase struct {
	name  string
	input string
	line  int
	path  string
	msg   string // substring of the message
}

var brokenCases = []brokenCase{
	{"bad yaml unclosed flow", "apiVersion: v1\nkind: Namespace\nmetadata: {name: [x\n", 3, "", "invalid YAML"},
	{"bad yaml tab indent", "apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: x\n", 4, "", "invalid YAML"},
	{"top level list", "- a\n- b\n", 1, "", "must be a YAML mapping"},
	{"missing kind", "apiVersion: v1\nmetadata:\n  name: x\n", 1, "kind", "kind is required"},
	{"missing apiVersion", "kind: Namespace\nmetadata:\n  name: x\n", 1, "apiVersion", "apiVersion is required"},
	{"unsupported apiVersion", "apiVersion: security.istio.io/v2\nkind: PeerAuthentication\nmetadata:\n  name: x\n", 1, "apiVersion", "unsupported apiVersion"},
	{"unknown kind", "apiVersion: security.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: x\n", 2, "kind", "unsupported kind"},
	{"unknown top-level field", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\nspek: {}\n", 5, "spek", `unknown field "spek"`},
	{"unknown metadata field", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  nmespace: y\n", 5, "metadata.nmespace", "unknown field"},
	{"missing name", "apiVersion: v1\nkind: Namespace\nmetadata:\n  labels: {a: b}\n", 3, "metadata.name", "name is required"},
	{"uppercase name", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: Prod\n", 4, "metadata.name", "DNS-1123"},
	{"label value not a string", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    version: [1]\n", 6, "metadata.labels.version", "cannot use array as string"},
	{"authz unknown field", doc(sec, "AuthorizationPolicy", "  acton: ALLOW\n"), 6, "spec.acton", `unknown field "acton"`},
	{"authz invalid action", doc(sec, "AuthorizationPolicy", "  action: PERMIT\n"), 6, "spec.action", "invalid value for enum"},
	{"authz rules wrong type", doc(sec, "AuthorizationPolicy", "  rules: everything\n"), 6, "spec.rules", ""},
	{"authz custom without provider", doc(sec, "AuthorizationPolicy", "  action: CUSTOM\n  rules:\n  - {}\n"), 5, "spec.provider.name", "must not be empty"},
	{"authz provider with allow", doc(sec, "AuthorizationPolicy", "  action: ALLOW\n  provider:\n    name: opa\n"), 7, "spec.provider", "non CUSTOM"},
	{"authz selector and targetRef", doc(sec, "AuthorizationPolicy", "  selector:\n    matchLabels: {app: a}\n  targetRef:\n    kind: Service\n    name: a\n"), 8, "spec.targetRef", "only one of"},
	{"authz empty from", doc(sec, "AuthorizationPolicy", "  rules:\n  - from: []\n"), 7, "spec.rules[0].from", "`from` must not be empty"},
	{"authz empty source", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source: {}\n"), 8, "spec.rules[0].from[0].source", "must not be empty"},
	{"authz empty operation", doc(sec, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation: {}\n"), 8, "spec.rules[0].to[0].operation", "must not be empty"},
	{"authz empty to", doc(sec, "AuthorizationPolicy", "  rules:\n  - to: []\n"), 7, "spec.rules[0].to", "`to` must not be empty"},
	{"authz relative path", doc(sec, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation:\n        paths:\n        - /ok\n        - api/v1\n"), 11, "spec.rules[0].to[0].operation.paths[1]", "invalid path"},
	{"authz named path template", doc(sec, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation:\n        paths: [\"/{name}/x/{*}\"]\n"), 9, "spec.rules[0].to[0].operation.paths[0]", "unsupported path template"},
	{"authz double-star template not last", doc(sec, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation:\n        paths: [\"/a/{**}/b\"]\n"), 9, "spec.rules[0].to[0].operation.paths[0]", "last segment"},
	{"authz port out of range", doc(sec, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation:\n        ports: [\"99999\"]\n"), 9, "spec.rules[0].to[0].operation.ports[0]", "bad port"},
	{"authz port not numeric", doc(sec, "AuthorizationPolicy", "  rules:\n  - to:\n    - operation:\n        notPorts:\n        - http\n"), 10, "spec.rules[0].to[0].operation.notPorts[0]", "bad port"},
	{"authz bad cidr", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/8\", \"10.1.0.0/33\"]\n"), 9, "spec.rules[0].from[0].source.ipBlocks[1]", "bad CIDR"},
	{"authz bad ip", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        remoteIpBlocks:\n        - 300.1.1.1\n"), 10, "spec.rules[0].from[0].source.remoteIpBlocks[0]", "bad IP"},
	{"authz unknown condition key", doc(sec, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: source.color\n      values: [red]\n"), 8, "spec.rules[0].when[0].key", "unknown attribute"},
	{"authz condition without values", doc(sec, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: source.namespace\n"), 8, "spec.rules[0].when[0].values", "at least one of `values` or `notValues`"},
	{"authz condition bad ip value", doc(sec, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: source.ip\n      notValues:\n      - not-an-ip\n"), 10, "spec.rules[0].when[0].notValues[0]", "bad IP"},
	{"authz condition header without name", doc(sec, "AuthorizationPolicy", "  rules:\n  - when:\n    - key: request.headers\n      values: [a]\n"), 8, "spec.rules[0].when[0].key", "a[b]"},
	{"authz deny without rules", doc(sec, "AuthorizationPolicy", "  action: DENY\n"), 5, "spec.rules", "DENY action without `rules`"},
	{"peer authn port level without selector", doc(sec, "PeerAuthentication", "  portLevelMtls:\n    8080:\n      mode: DISABLE\n"), 6, "spec.portLevelMtls", "cannot have port level mTLS"},
	{"peer authn port zero", doc(sec, "PeerAuthentication", "  selector:\n    matchLabels: {app: a}\n  portLevelMtls:\n    0:\n      mode: DISABLE\n"), 9, "spec.portLevelMtls.0", "1..65535"},
	{"peer authn invalid mode", doc(sec, "PeerAuthentication", "  mtls:\n    mode: STRONG\n"), 7, "spec.mtls.mode", "invalid value for enum"},
	{"request authn without issuer or jwksUri", doc(sec, "RequestAuthentication", "  jwtRules:\n  - jwks: '{\"keys\":[]}'\n"), 7, "spec.jwtRules[0].issuer", "issuer or jwksUri must be set"},
	{"request authn with neither issuer nor keys", doc(sec, "RequestAuthentication", "  jwtRules:\n  - audiences: [a]\n"), 7, "spec.jwtRules[0].issuer", "issuer or jwksUri must be set"},
	{"request authn jwks and jwksUri", doc(sec, "RequestAuthentication", "  jwtRules:\n  - issuer: a\n    jwksUri: https://idp.example.com/keys\n    jwks: '{\"keys\":[]}'\n"), 9, "spec.jwtRules[0].jwks", "only one of jwks and jwksUri"},
	{"request authn ftp jwksUri", doc(sec, "RequestAuthentication", "  jwtRules:\n  - issuer: a\n    jwksUri: ftp://idp.example.com/keys\n"), 8, "spec.jwtRules[0].jwksUri", "not supported"},
	{"request authn header without name", doc(sec, "RequestAuthentication", "  jwtRules:\n  - issuer: a\n    fromHeaders:\n    - prefix: 'Bearer '\n"), 9, "spec.jwtRules[0].fromHeaders[0].name", "non-empty"},
	{"request authn bad output header", doc(sec, "RequestAuthentication", "  jwtRules:\n  - issuer: a\n    outputClaimToHeaders:\n    - header: x user\n      claim: sub\n"), 9, "spec.jwtRules[0].outputClaimToHeaders[0].header", "not a valid header name"},
	{"request authn reserved output header", doc(sec, "RequestAuthentication", "  jwtRules:\n  - issuer: a\n    outputClaimToHeaders:\n    - header: Host\n      claim: sub\n"), 9, "spec.jwtRules[0].outputClaimToHeaders[0].header", "reserved"},
	{"authz serviceAccounts with principals", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/a/sa/b]\n        serviceAccounts: [a/b]\n"), 10, "spec.rules[0].from[0].source.serviceAccounts", "cannot set serviceAccounts with namespaces or principals"},
	{"authz serviceAccounts with namespaces", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        serviceAccounts: [a/b]\n        namespaces: [a]\n"), 9, "spec.rules[0].from[0].source.serviceAccounts", "cannot set serviceAccounts with namespaces or principals"},
	{"authz notServiceAccounts with notPrincipals", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        notPrincipals: ['*']\n        notServiceAccounts: [a/b]\n"), 10, "spec.rules[0].from[0].source.notServiceAccounts", "cannot set notServiceAccounts with namespaces or principals"},
	{"authz serviceAccounts with notNamespaces", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        notNamespaces: [x]\n        serviceAccounts: [b]\n"), 10, "spec.rules[0].from[0].source.serviceAccounts", "cannot set serviceAccounts with namespaces or principals"},
	{"authz serviceAccounts wildcard", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        serviceAccounts: [a/b, 'a/*']\n"), 9, "spec.rules[0].from[0].source.serviceAccounts[1]", "no wildcards"},
	{"authz serviceAccounts empty name", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        notServiceAccounts: [a/]\n"), 9, "spec.rules[0].from[0].source.notServiceAccounts[0]", "invalid service account"},
	{"destination rule without host", doc(net, "DestinationRule", "  trafficPolicy:\n    tls:\n      mode: SIMPLE\n"), 5, "spec.host", "host is required"},
	{"destination rule mutual without cert", doc(net, "DestinationRule", "  host: a\n  trafficPolicy:\n    tls:\n      mode: MUTUAL\n      privateKey: /k.pem\n"), 8, "spec.trafficPolicy.tls.clientCertificate", "client certificate required"},
	{"destination rule istio mutual with cert", doc(net, "DestinationRule", "  host: a\n  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n      clientCertificate: /c.pem\n"), 10, "spec.trafficPolicy.tls.clientCertificate", "must not be set"},
	{"service entry without hosts", doc(net, "ServiceEntry", "  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: STATIC\n"), 5, "spec.hosts", "at least one host"},
	{"service entry duplicate port", doc(net, "ServiceEntry", "  hosts: [a.example.com]\n  resolution: DNS\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  - {number: 80, name: http2, protocol: HTTP2}\n"), 10, "spec.ports[1].number", "already defined"},
	{"service entry none with endpoints", doc(net, "ServiceEntry", "  hosts: [a.example.com]\n  endpoints:\n  - address: 10.0.0.1\n"), 7, "spec.endpoints", "resolution type NONE"},
	{"service entry port number overflow", doc(net, "ServiceEntry", "  hosts: [a.example.com]\n  ports:\n  - number: 4294967296\n    name: http\n"), 8, "spec.ports[0].number", "invalid value"},
	{"workload entry without address", doc(net, "WorkloadEntry", "  labels: {app: a}\n"), 5, "spec.address", "address is required"},
	{"gateway https without tls", doc(net, "Gateway", "  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']\n"), 7, "spec.servers[0].tls", "must have TLS settings"},
	{"gateway without servers", doc(net, "Gateway", "  selector: {istio: ingressgateway}\n"), 5, "spec.servers", "at least one server"},
	{"virtual service without routes", doc(net, "VirtualService", "  hosts: [a]\n"), 5, "spec", "http, tcp or tls"},
	{"workload without command", doc(pal, "Workload", "  ports:\n  - number: 8080\n"), 5, "spec.command", "command is required"},
	{"workload port out of range", doc(pal, "Workload", "  command: ./app\n  ports:\n  - number: 70000\n"), 8, "spec.ports[0].number", "1..65535"},
	{"workload unknown field", doc(pal, "Workload", "  command: ./app\n  ports:\n  - number: 80\n  enviroment: {}\n"), 9, "spec.enviroment", `unknown field "enviroment"`},
	{"workload address not an IP", doc(pal, "Workload", "  command: ./app\n  address: web.local\n  ports:\n  - number: 80\n"), 7, "spec.address", "not an IP address"},
	{"workload address loopback", doc(pal, "Workload", "  command: ./app\n  address: 127.0.0.1\n  ports:\n  - number: 80\n"), 7, "spec.address", "not loopback"},
	{"workload address with zone", doc(pal, "Workload", "  command: ./app\n  address: fe80::1%eth0\n  ports:\n  - number: 80\n"), 7, "spec.address", "not an IP address"},
	{"workload wrong type", doc(pal, "Workload", "  command: ./app\n  ports:\n  - number: eighty\n"), 8, "spec.ports[0].number", "cannot use string"},
	{"legacy policy bad mode", doc("authentication.istio.io/v1alpha1", "Policy", "  peers:\n  - mtls:\n      mode: STRONG\n"), 8, "spec.peers[0].mtls.mode", "STRICT or PERMISSIVE"},
	{"legacy binding without role", doc("rbac.istio.io/v1alpha1", "ServiceRoleBinding", "  subjects:\n  - user: a\n"), 5, "spec.roleRef", "roleRef or role"},
	{"legacy rbac config bad mode", "apiVersion: rbac.istio.io/v1alpha1\nkind: ClusterRbacConfig\nmetadata:\n  name: default\nspec:\n  mode: MAYBE\n", 6, "spec.mode", "invalid mode"},
	{"duplicate yaml key", doc(sec, "AuthorizationPolicy", "  action: ALLOW\n  action: DENY\n"), 7, "spec.action", "duplicate key"},
	{"error in second document", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\n" + doc(sec, "PeerAuthentication", "  mtls:\n    mode: NOPE\n"), 12, "spec.mtls.mode", "invalid value for enum"},
	{"spec is a string", doc(sec, "PeerAuthentication", "  strict\n"), 6, "spec", ""},
}

func TestDecodeBroken(t *testing.T) {
	for _, tc := range brokenCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode("bad.yaml", []byte(tc.input))
			if err == nil {
				t.Fatalf("Decode succeeded, want error at line %d path %q", tc.line, tc.path)
			}
			var found bool
			for _, fe := range fieldErrors(err) {
				if fe.Line == tc.line && fe.Path == tc.path && strings.Contains(fe.Message, tc.msg) {
					found = true
					if !strings.HasPrefix(fe.Error(), "bad.yaml:") {
						t.Errorf("error %q does not start with the file name", fe.Error())
					}
				}
			}
			if !found {
				t.Fatalf("no error at line %d path %q containing %q; got:\n%v", tc.line, tc.path, tc.msg, err)
			}
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	_, err := Decode("p.yaml", []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\n  namespace: prod\nspec:\n  mtls:\n    mode: OFF\n"))
	want := `p.yaml:8: PeerAuthentication prod/a: spec.mtls.mode: invalid value for enum field mode: "OFF"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// acceptedCases are inputs Istio's validation accepts, that an earlier
// Palisade rejected.
var acceptedCases = []struct {
	name, input string
}{
	// istio/istio pkg/config/validation validateJwtRule: "issuer or
	// jwksUri must be non-empty string" (since 1.27, istio/istio#56158).
	{"authz serviceAccounts alone", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        serviceAccounts: [a/b, c]\n")},
	{"authz serviceAccounts with requestPrincipals and ipBlocks", doc(sec, "AuthorizationPolicy", "  rules:\n  - from:\n    - source:\n        notServiceAccounts: [a/b]\n        requestPrincipals: ['*']\n        ipBlocks: [10.0.0.0/8]\n")},
	{"request authn jwksUri without issuer", doc(sec, "RequestAuthentication", "  jwtRules:\n  - jwksUri: https://idp.example.com/keys\n")},
}

func TestDecodeAccepted(t *testing.T) {
	for _, tc := range acceptedCases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode("ok.yaml", []byte(tc.input)); err != nil {
				t.Fatalf("Decode: %v", err)
			}
		})
	}
}
