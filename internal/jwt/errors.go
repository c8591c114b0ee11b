package jwt

import (
	"fmt"
	"net/http"
)

// Envoy's jwt_authn status strings, sent as the body of a rejected request.
const (
	MsgMissing            = "Jwt is missing"
	MsgNotYetValid        = "Jwt not yet valid"
	MsgExpired            = "Jwt is expired"
	MsgBadFormat          = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	MsgHeaderBadBase64    = "Jwt header is an invalid Base64url encoded"
	MsgHeaderBadJSON      = "Jwt header is an invalid JSON"
	MsgHeaderBadAlg       = "Jwt header [alg] field is required and must be a string"
	MsgHeaderAlgNotImpl   = "Jwt header [alg] is not supported"
	MsgHeaderBadKid       = "Jwt header [kid] field is not a string"
	MsgPayloadBadBase64   = "Jwt payload is an invalid Base64url encoded"
	MsgPayloadBadJSON     = "Jwt payload is an invalid JSON"
	MsgIssNotString       = "Jwt payload [iss] field is not a string"
	MsgSubNotString       = "Jwt payload [sub] field is not a string"
	MsgJtiNotString       = "Jwt payload [jti] field is not a string"
	MsgAudNotString       = "Jwt payload [aud] field is not a string or string list"
	MsgSignatureBadBase64 = "Jwt signature is an invalid Base64url encoded"
	MsgUnknownIssuer      = "Jwt issuer is not configured"
	MsgAudienceNotAllowed = "Audiences in Jwt are not allowed"
	MsgVerificationFails  = "Jwt verification fails"
	MsgMultipleTokens     = "Found multiple Jwt tokens"
	MsgKidAlgMismatch     = "Jwks doesn't have key to match kid or alg from Jwt"
	MsgJwksFetchFail      = "Jwks remote fetch is failed"
)

// msgNotInteger and msgOutOfRange build Envoy's messages for iat, nbf, exp.
func msgNotInteger(claim string) string {
	return "Jwt payload [" + claim + "] field is not an integer"
}

func msgOutOfRange(claim string) string {
	return "Jwt payload [" + claim + "] field is not a positive 64 bit integer"
}

// Error is a rejected request. Status and Message go to the peer (401 or
// 403 and Envoy's short message); Reason and Policy go to the log only.
type Error struct {
	Status  int
	Message string
	Reason  string
	Policy  string // namespace/name of the RequestAuthentication, if known
}

func (e *Error) Error() string {
	if e.Policy != "" {
		return fmt.Sprintf("jwt: %s (%s; policy %s)", e.Message, e.Reason, e.Policy)
	}
	return fmt.Sprintf("jwt: %s (%s)", e.Message, e.Reason)
}

// ServeHTTP writes the answer Envoy gives: the status, the short message as
// a plain-text body, and a WWW-Authenticate challenge.
func (e *Error) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := "invalid_token"
	if e.Status == http.StatusForbidden {
		code = "insufficient_scope"
	}
	realm := "http://" + r.Host + r.URL.Path
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Bearer realm=%q, error=%q", realm, code))
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(e.Message))
}

func unauthorized(msg, reason string) *Error {
	return &Error{Status: http.StatusUnauthorized, Message: msg, Reason: reason}
}
