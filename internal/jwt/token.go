package jwt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// MaxTokenSize bounds the size of a token, in bytes. Envoy's own bound is
// the request header limit (60 KiB by default); 64 KiB keeps room for large
// group claims.
const MaxTokenSize = 64 << 10

// token is a parsed, not yet verified, compact JWS whose payload is a JWT.
type token struct {
	raw        string
	payloadB64 string // the payload segment as sent, for outputPayloadToHeader

	alg string
	kid string

	iss, sub, azp string
	aud           []string
	exp, nbf      int64 // 0 when absent
	claims        map[string]any
}

// supportedAlgs are the algorithms a token may name. HMAC algorithms parse
// (Envoy knows them) but never find a key: key sets hold public keys only.
var supportedAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
	"HS256": true, "HS384": true, "HS512": true,
}

// parseToken checks the form of a compact JWT and decodes its header and
// payload, with Envoy's messages for each failure. It does not verify.
func parseToken(raw string) (*token, *Error) {
	if len(raw) > MaxTokenSize {
		return nil, unauthorized(MsgVerificationFails, fmt.Sprintf("token is %d bytes, more than the %d allowed", len(raw), MaxTokenSize))
	}
	if strings.Count(raw, ".") != 2 {
		return nil, unauthorized(MsgBadFormat, fmt.Sprintf("token has %d dots, want 2", strings.Count(raw, ".")))
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	t := &token{raw: raw, payloadB64: p}

	hb, err := decodeSegment(h)
	if err != nil {
		return nil, unauthorized(MsgHeaderBadBase64, "header: "+err.Error())
	}
	hdr, err := decodeObject(hb)
	if err != nil {
		return nil, unauthorized(MsgHeaderBadJSON, "header: "+err.Error())
	}
	alg, ok := hdr["alg"].(string)
	if !ok {
		return nil, unauthorized(MsgHeaderBadAlg, fmt.Sprintf("header alg is %T", hdr["alg"]))
	}
	if !supportedAlgs[alg] {
		return nil, unauthorized(MsgHeaderAlgNotImpl, fmt.Sprintf("header alg %.32q is not supported", alg))
	}
	t.alg = alg
	if v, ok := hdr["kid"]; ok {
		kid, ok := v.(string)
		if !ok {
			return nil, unauthorized(MsgHeaderBadKid, fmt.Sprintf("header kid is %T", v))
		}
		t.kid = kid
	}
	// RFC 7515 4.1.11: a recipient must reject extensions it does not
	// understand; Palisade understands none. b64 (RFC 7797) changes what is
	// signed and is refused whether or not crit lists it.
	for _, name := range []string{"crit", "b64"} {
		if _, ok := hdr[name]; ok {
			return nil, unauthorized(MsgVerificationFails, "header carries "+name+", which is not supported")
		}
	}

	pb, err := decodeSegment(p)
	if err != nil {
		return nil, unauthorized(MsgPayloadBadBase64, "payload: "+err.Error())
	}
	claims, err := decodeObject(pb)
	if err != nil {
		return nil, unauthorized(MsgPayloadBadJSON, "payload: "+err.Error())
	}
	t.claims = claims
	if e := t.readRegistered(); e != nil {
		return nil, e
	}
	if _, err := decodeSegment(s); err != nil {
		return nil, unauthorized(MsgSignatureBadBase64, "signature: "+err.Error())
	}
	return t, nil
}

// readRegistered type-checks the registered claims as Envoy does.
func (t *token) readRegistered() *Error {
	for _, c := range []struct {
		name string
		dst  *string
		msg  string
	}{
		{"iss", &t.iss, MsgIssNotString},
		{"sub", &t.sub, MsgSubNotString},
		{"jti", nil, MsgJtiNotString},
	} {
		v, ok := t.claims[c.name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return unauthorized(c.msg, fmt.Sprintf("claim %s is %T", c.name, v))
		}
		if c.dst != nil {
			*c.dst = s
		}
	}
	if azp, ok := t.claims["azp"].(string); ok { // Envoy does not check azp
		t.azp = azp
	}
	for _, c := range []struct {
		name string
		dst  *int64
	}{{"iat", nil}, {"nbf", &t.nbf}, {"exp", &t.exp}} {
		v, ok := t.claims[c.name]
		if !ok {
			continue
		}
		f, ok := v.(float64)
		if !ok {
			return unauthorized(msgNotInteger(c.name), fmt.Sprintf("claim %s is %T", c.name, v))
		}
		// Envoy reads these as a JSON number, in [0, 2^63), truncated.
		if f < 0 || f >= math.MaxInt64 || math.IsNaN(f) {
			return unauthorized(msgOutOfRange(c.name), fmt.Sprintf("claim %s is %g", c.name, f))
		}
		if c.dst != nil {
			*c.dst = int64(f)
		}
	}
	switch v := t.claims["aud"].(type) {
	case nil:
		if _, ok := t.claims["aud"]; ok {
			return unauthorized(MsgAudNotString, "claim aud is null")
		}
	case string:
		t.aud = []string{v}
	case []any:
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return unauthorized(MsgAudNotString, fmt.Sprintf("claim aud holds a %T", a))
			}
			t.aud = append(t.aud, s)
		}
	default:
		return unauthorized(MsgAudNotString, fmt.Sprintf("claim aud is %T", v))
	}
	return nil
}

// decodeSegment decodes unpadded base64url, refusing every byte outside
// the alphabet (Go's decoder would skip CR and LF).
func decodeSegment(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("byte %#02x at %d is not base64url", c, i)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64url: %w", err)
	}
	return b, nil
}

var errDuplicate = errors.New("duplicate member")

// decodeObject decodes a JSON object, refusing duplicate member names at
// any depth, nesting deeper than maxDepth and anything after the object,
// so that every reader of the token sees the same claims.
func decodeObject(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	if err := checkMembers(b); err != nil {
		return nil, err
	}
	return m, nil
}

const maxDepth = 32

// checkMembers finds duplicate member names in JSON that json.Unmarshal
// has already accepted, so it only has to track strings and nesting.
// Names are compared as json.Unmarshal stores them: unescaped, with
// invalid UTF-8 replaced.
func checkMembers(b []byte) error {
	type frame struct {
		obj  bool
		seen map[string]struct{}
	}
	var stack []frame
	expectName := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			if len(stack) >= maxDepth {
				return fmt.Errorf("JSON nested deeper than %d", maxDepth)
			}
			stack = append(stack, frame{obj: b[i] == '{'})
			expectName = b[i] == '{'
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			expectName = stack[len(stack)-1].obj
		case '"':
			j, escaped := i+1, false
			for ; b[j] != '"'; j++ {
				switch {
				case b[j] == '\\':
					escaped = true
					j++
				case b[j] >= 0x80: // invalid UTF-8 becomes U+FFFD
					escaped = true
				}
			}
			if expectName {
				name := string(b[i+1 : j])
				if escaped {
					if err := json.Unmarshal(b[i:j+1], &name); err != nil {
						return err
					}
				}
				f := &stack[len(stack)-1]
				if _, dup := f.seen[name]; dup {
					return fmt.Errorf("%w %.32q", errDuplicate, name)
				}
				if f.seen == nil {
					f.seen = make(map[string]struct{}, 8)
				}
				f.seen[name] = struct{}{}
				expectName = false
			}
			i = j
		}
	}
	return nil
}
