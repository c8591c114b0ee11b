// Package extauthz is the client side of Envoy's external authorization
// (ext_authz v3) protocol, used when an AuthorizationPolicy with action CUSTOM
// matches a request.
//
// A Client is built once per MeshConfig extension provider (envoyExtAuthzGrpc
// or envoyExtAuthzHttp) and is safe for concurrent use; connections to the
// authorizer are pooled. Each Check builds the CheckRequest the way Envoy's
// ext_authz HTTP filter does (peer addresses and SPIFFE principals, request
// time, lower-cased headers with the :authority, :method, :path and :scheme
// pseudo-headers, the body when includeRequestBodyInCheck asks for it) and
// turns the authorizer's answer into a Result: allowed with header and query
// mutations for the upstream request, or denied with the status, body and
// headers to send downstream. Failures to reach the authorizer, timeouts and
// (for HTTP) 5xx answers follow the provider's failOpen and statusOnError, as
// Envoy does. Decisions are never cached: every Check asks the authorizer.
package extauthz
