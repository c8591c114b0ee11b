// Package jwt implements Istio's RequestAuthentication: it compiles the
// jwtRules that apply to one workload into an immutable Authenticator, and
// validates the JSON Web Tokens of each HTTP request against them with the
// semantics of Envoy's jwt_authn filter, which is what Istio programs.
//
// # Request flow
//
// Authenticate extracts every token from the locations the rules name
// (fromHeaders with their prefix, fromParams, fromCookies; by default
// "Authorization: Bearer " and the access_token query parameter). A request
// without any token passes unauthenticated: authorization decides. Every
// token found must be valid (Envoy's rule: a good token next to a bad one
// must not let the bad one reach the app). Each token is checked in Envoy's
// order: form, issuer (the token's iss picks the rule), exp and nbf with 60
// seconds of clock skew, audiences, then the signature against the issuer's
// JSON Web Key Set. Failures carry Envoy's short body messages ("Jwt is
// expired", "Jwt issuer is not configured", ...) with status 401, or 403 for
// "Audiences in Jwt are not allowed"; the full reason goes in Error.Reason
// for the log, never to the peer. On success the request is changed as the
// rule says: the token is removed unless forwardOriginalToken, the payload
// is copied to outputPayloadToHeader and claims to outputClaimToHeaders.
//
// # Where JWKS come from
//
// Istio's istiod fetches each jwksUri and inlines the keys into Envoy's
// config by default; Envoy can also fetch them itself. Palisade's proxy
// fetches them itself, through a KeyStore: in local mode the proxy and the
// provider share a machine, there is no second hop to keep in sync, a key
// rotated at the provider is picked up by the proxy that sees the new kid
// (refresh on unknown kid) without a control plane push, and the control
// plane needs no egress to every provider. A KeyStore fetches each key set
// on first use, refreshes it in the background once it is older than the
// refresh interval (20 minutes, Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL
// default), and at once, rate limited, when a token names a kid it does not
// hold. A failed fetch keeps the last good keys. A key set that was never
// fetched rejects every token ("Jwks remote fetch is failed"); there is no
// fallback key. With neither jwks nor jwksUri the jwks_uri is discovered at
// <issuer>/.well-known/openid-configuration.
//
// # Verified-token cache
//
// As Envoy's jwt_cache_config, a KeyStore remembers the tokens whose
// signature verified (TokenCacheSize, default 100, Envoy's jwt_cache_size;
// tokens over 4 KiB are never held), keyed by the token, least recently
// used first out. Only verified tokens enter it, so forged tokens cannot
// evict good ones. A repeated token is neither parsed nor verified again,
// but every other check runs on each request: exp and nbf against the
// clock (an expired entry is dropped), the rule's issuer and audiences, and
// the key that verified it must still be in the issuer's current key set,
// so a token whose key left the JWKS is rejected at once.
//
// # Algorithms and header tricks
//
// RS256/384/512, PS256/384/512, ES256/384/512 and EdDSA, verified by
// lestrrat-go/jwx. "none" is not supported; HMAC algorithms never verify
// because a key set fetched from a provider holds public keys only (oct
// keys are dropped). The key is picked from the configured key set by kid
// and alg, never from the token: jwk, jku, x5u and x5c headers are ignored,
// tokens with a crit or b64 header are rejected (RFC 7515 4.1.11), duplicate
// JSON members are rejected to rule out parser differentials.
//
// # Deviations from Envoy, on purpose
//
//   - A configured header that is present without its prefix is rejected
//     with 401, as Istio's JWTHeader documentation says, where Envoy lets the
//     request through as if there were no token.
//   - Tokens are removed from query parameters and cookies as well as
//     headers when forwardOriginalToken is false.
//   - Headers named by outputPayloadToHeader and outputClaimToHeaders are
//     removed from every request before they are set, so a client cannot
//     send its own.
//   - Empty audiences accept any audience (Envoy does not check); Istio's
//     reference says "the service name", which istiod never configured.
package jwt
