// Package authz compiles Istio AuthorizationPolicy resources for one
// workload (a sidecar or a gateway) and decides requests against them.
//
// Compile keeps the policies that apply to the workload (config.Applies:
// root namespace, namespace, selector, targetRef(s)) and compiles every
// field once: string matchers, CIDRs, ports, path templates. The Engine is
// immutable; Evaluate does not allocate. The sidecar calls Custom first
// (and its external authorizer when a CUSTOM policy matches), then
// Evaluate. Explain gives the same answer with the reasons, for
// `palisade authz check`; Validate compiles every policy whether or not it
// applies, for `palisade analyze`. NormalizePath implements the mesh's path
// normalization, applied by the caller before matching and forwarding.
//
// # Semantics
//
// From https://istio.io/latest/docs/concepts/security/#authorization and
// https://istio.io/latest/docs/reference/config/security/authorization-policy/:
//
//   - CUSTOM runs first, then DENY, then ALLOW. A request matching a DENY
//     policy is denied. With no ALLOW policy the request is allowed;
//     otherwise it is allowed only when an ALLOW policy matches. AUDIT
//     policies mark the decision (Decision.Audited) and never change it.
//   - A policy matches when any of its rules does. A policy without rules
//     matches nothing: an ALLOW policy without rules therefore denies all
//     (https://istio.io/latest/docs/reference/config/security/authorization-policy/#AuthorizationPolicy),
//     and a DENY, AUDIT or CUSTOM policy without rules does nothing. The
//     empty rule `{}` matches everything.
//   - A rule matches when some `from` source AND some `to` operation AND
//     every `when` condition match; a missing list matches anything. In a
//     source or an operation every set field must match; a field matches
//     when any of its values matches and none of its `not…` values does.
//   - Values are exact, prefix ("abc*"), suffix ("*abc") or presence
//     ("*": any non-empty value; for hosts and headers, present). Paths may
//     use Istio's templates: {*} is one segment, {**} the rest, and must be
//     last. No value ever becomes a regular expression, so a '.' in a
//     service account is a dot (CVE-2026-39350).
//   - principals and source.principal compare the peer identity
//     "<td>/ns/<ns>/sa/<sa>" (no "spiffe://"); namespaces and
//     source.namespace compare its "/ns/<ns>/" segment; serviceAccounts
//     compare namespace and service account exactly ("<sa>" means the
//     policy's namespace); trustDomains compare its first segment.
//   - requestPrincipals and request.auth.principal split each value at its
//     last '/' and match issuer and subject separately, as Istio 1.22+
//     does. request.auth.audiences, presenter and claims read the validated
//     JWT; request.auth.claims[a][b] walks nested claims; a list claim
//     matches when any element does; only strings match. Without a JWT no
//     value matches and `not…` values alone do (so DENY
//     notRequestPrincipals ["*"] denies requests without a token, as in
//     https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/).
//   - ipBlocks and source.ip read the connection's source address;
//     remoteIpBlocks and remote.ip the original client address
//     (https://istio.io/latest/docs/tasks/security/authorization/authz-ingress/);
//     destination.ip, destination.port and ports the local address. On a
//     gateway, ports are the gateway's own listener ports
//     (ISTIO-SECURITY-2021-002).
//   - experimental.envoy.filters.* conditions and unknown keys are
//     compile errors, like a malformed CIDR or port. Istio's "at most one
//     CUSTOM provider per workload" is a compile error too.
//
// # TCP
//
// From https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/
// and Istio's RBAC builder: on a TCP connection (Request.IsHTTP false) an
// ALLOW rule that uses an HTTP-only field (requestPrincipals, hosts,
// methods, paths, their `not…` forms, request.* conditions) never matches;
// a DENY, AUDIT or CUSTOM rule ignores those fields, which can only widen
// it. Access is never widened for TCP.
//
// # Plaintext connections
//
// principals, namespaces, serviceAccounts, trustDomains, source.principal,
// source.namespace and connection.sni exist only with (m)TLS. On a
// plaintext connection their values never match. ISTIO-SECURITY-2021-004
// (https://istio.io/latest/news/security/istio-security-2021-004/) warns
// that in Istio a `not…` field then matches, so `notNamespaces: ["foo"]`
// in an ALLOW policy lets plaintext traffic from foo in. Palisade does not
// turn that absence into access: in an ALLOW policy a `not…` mTLS field
// does not match a plaintext connection; in a DENY, AUDIT or CUSTOM policy
// it does (the request is denied). As in Istio, a DENY on `namespaces`
// does not catch plaintext traffic (ISTIO-SECURITY-2021-003): use STRICT
// mTLS, or deny `notPrincipals: ["*"]`.
//
// # Requests an attacker shapes
//
// See https://istio.io/latest/docs/reference/config/security/normalization/
// and https://istio.io/latest/docs/ops/best-practices/security/. Where the
// same request can be spelled several ways, DENY-like policies (DENY,
// AUDIT, CUSTOM) see every spelling and ALLOW policies see the one sent:
//
//   - Paths are compared after NormalizePath, without ?query or #fragment
//     (CVE-2020-8595, CVE-2021-39156). A backend may still read the
//     forwarded path more loosely (decode %2F, drop ";params", merge
//     slashes; CVE-2021-31920), so the engine also compares that strict
//     reading: a DENY matches if either spelling does, an ALLOW needs both.
//     Under BASE, "/public/..%2Fadmin" is therefore denied by a DENY on
//     "/admin*" and not allowed by an ALLOW on "/public/*".
//   - Path case: Istio compares paths case-sensitively (RFC 3986), but a
//     backend may not (IIS, ASP.NET, a case-insensitive file system), and
//     then "/ADMIN" slips past a DENY on "/admin*" (istio/istio#40541:
//     a VirtualService with ignoreUriCase routes what the policy does not
//     match; Istio's answer is a Lua filter that lower-cases the path).
//     Palisade folds case where a match narrows access: DENY-like `paths`
//     are case-insensitive, their `notPaths` exact (so notPaths
//     ["/public*"] still denies "/PUBLIC"); ALLOW `paths` stay
//     case-sensitive, as in Istio, and ALLOW `notPaths` fold (so
//     notPaths ["/admin*"] does not admit "/ADMIN", which Istio would).
//     This only ever denies more, so there is no option to turn it off.
//   - Hosts compare case-insensitively (RFC 4343, CVE-2021-39155). DENY
//     policies also compare the host without its port and without a
//     trailing dot, so "Admin.Example.com.:80" is "admin.example.com" to a
//     DENY; ALLOW policies compare the host as sent (write
//     "example.com:*" to allow any port, as Istio recommends).
//   - Methods: HTTP/1 codecs reject a lower-case method, but HTTP/2 carries
//     any token in :method, and Envoy compares it exactly, so Istio's
//     method rules could be bypassed by changing the case
//     (ISTIO-SECURITY-2026-007, GHSA-w44g-8m76-8gc5). Palisade folds case
//     where a match narrows access and compares exactly where it would
//     widen: DENY-like `methods` fold ("delete" is denied by [DELETE]) and
//     their `notMethods` are exact ("get" is not GET, so notMethods [GET]
//     denies it); ALLOW `methods` are exact, as in Envoy, and ALLOW
//     `notMethods` fold ("delete" is not admitted by notMethods [DELETE],
//     which Istio would admit).
//   - Header names compare case-insensitively. A header's spellings are
//     each line of it, each element of a comma-separated line (RFC 9110
//     makes "X-Role: a,b" the same list as two lines), and the lines
//     joined with ',' as Envoy joins them. Envoy matched only the joined
//     string, so a DENY on "admin" missed a second line "admin"
//     (CVE-2026-26308, GHSA-ghc4-35x6-crw5), and never splits a line. A
//     DENY-like field matches when one spelling matches a value and one
//     escapes the notValues; an ALLOW needs every line to match a value
//     as a whole (so "admin,evil" is not "admin", as in Envoy) and no
//     spelling to match a notValue. Adding a line or an element can only
//     deny more. Pseudo-headers (:authority, :method, :path) are one
//     value and are not split.
package authz
