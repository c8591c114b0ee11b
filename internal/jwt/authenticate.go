package jwt

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Result is the identity of a request with a valid token.
type Result struct {
	Principal string   // iss/sub, Istio's request principal
	Issuer    string   // iss
	Subject   string   // sub
	Audiences []string // aud
	Presenter string   // azp
	Claims    map[string]any
	Policy    string // namespace/name of the RequestAuthentication whose rule matched
}

// Authenticate validates the request's tokens. No token at all: (nil, nil),
// the request goes on unauthenticated and authorization decides. An invalid
// token: an *Error (401, or 403 for a disallowed audience), and r is not
// changed. Valid tokens: the first token's Result, and r changed as the
// rules say (token removed unless forwardOriginalToken, payload and claims
// copied to headers). Headers the rules write are removed from every
// request that goes on, so the app can trust them. The request's context
// bounds any wait for a key fetch.
//
// A nil Authenticator, like one compiled from no rules, lets every request
// through unauthenticated.
func (a *Authenticator) Authenticate(r *http.Request) (*Result, error) {
	if a == nil || len(a.rules) == 0 {
		return nil, nil
	}
	toks, e := a.extract(r)
	if e != nil {
		return nil, e
	}
	if len(toks) == 0 {
		a.dropOutputs(r)
		return nil, nil
	}
	type good struct {
		t *token
		r *rule
	}
	goods := make([]good, 0, len(toks))
	var drop []*location
	for i, f := range toks {
		dup := false
		for _, prev := range toks[:i] {
			if prev.raw == f.raw {
				dup = true
			}
		}
		t, rl, e := a.verify(r.Context(), f)
		if e != nil {
			return nil, e
		}
		if !dup {
			goods = append(goods, good{t, rl})
		}
		if !rl.forward {
			drop = append(drop, f.loc)
		}
	}
	for _, l := range drop { // only once every token is known good
		remove(r, l)
	}
	a.dropOutputs(r)
	for _, g := range goods {
		setOutputs(r, g.t, g.r)
	}
	t, rl := goods[0].t, goods[0].r
	return &Result{
		Principal: t.iss + "/" + t.sub, Issuer: t.iss, Subject: t.sub,
		Audiences: t.aud, Presenter: t.azp, Claims: t.claims, Policy: rl.policy,
	}, nil
}

// verify checks one token in Envoy's order: form, issuer, time, audience,
// key and signature. Rules that share the token's location and issuer are
// tried in order, then the rules without an issuer (which accept any iss
// their keys verify); the first that accepts wins.
//
// A token found in the verified-token cache is not parsed or verified
// again; every other check still runs, and the key that verified it must
// still be in the rule's key set.
func (a *Authenticator) verify(ctx context.Context, f found) (*token, *rule, *Error) {
	hit, cached := a.cache.get(f.raw, a.now())
	t := hit.t
	if !cached {
		var e *Error
		if t, e = parseToken(f.raw); e != nil {
			e.Reason = f.loc.String() + ": " + e.Reason
			return nil, nil, e
		}
	}
	var first *Error
	for _, anyIssuer := range []bool{false, true} {
		for _, ri := range f.loc.rules {
			rl := a.rules[ri]
			if anyIssuer != (rl.issuer == "") || (!anyIssuer && rl.issuer != t.iss) {
				continue
			}
			pub, e := a.check(ctx, t, rl, hit.pub)
			if e == nil {
				if !cached {
					a.cache.put(t, pub)
				}
				return t, rl, nil
			}
			if first == nil {
				first = e
			}
		}
	}
	if first == nil {
		return nil, nil, unauthorized(MsgUnknownIssuer, fmt.Sprintf("%s: no rule for issuer %.128q", f.loc, t.iss))
	}
	return nil, nil, first
}

// check runs the time, audience and signature checks of one rule and
// returns the key that verified t. A non-nil cachedPub is the key that
// verified t before: when the rule's key set still holds it, the signature
// is not checked again.
func (a *Authenticator) check(ctx context.Context, t *token, rl *rule, cachedPub crypto.PublicKey) (crypto.PublicKey, *Error) {
	fail := func(status int, msg, format string, args ...any) *Error {
		return &Error{Status: status, Message: msg, Reason: fmt.Sprintf(format, args...), Policy: rl.policy}
	}
	now := a.now()
	if t.exp != 0 && now.After(time.Unix(t.exp, 0).Add(clockSkew)) {
		return nil, fail(http.StatusUnauthorized, MsgExpired, "exp %s is before %s less %s of skew", time.Unix(t.exp, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), clockSkew)
	}
	if t.nbf != 0 && now.Add(clockSkew).Before(time.Unix(t.nbf, 0)) {
		return nil, fail(http.StatusUnauthorized, MsgNotYetValid, "nbf %s is after %s plus %s of skew", time.Unix(t.nbf, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), clockSkew)
	}
	if len(rl.audiences) > 0 {
		ok := false
		for _, aud := range t.aud {
			if rl.audiences[sanitizeAudience(aud)] {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fail(http.StatusForbidden, MsgAudienceNotAllowed, "token audiences %.256q, rule allows %d others", t.aud, len(rl.audiences))
		}
	}
	// A fetch is bounded by the rule's timeout inside the key set.
	kl, err := rl.keys.keys(ctx)
	if err != nil || kl == nil {
		return nil, fail(http.StatusUnauthorized, MsgJwksFetchFail, "no keys for issuer %q: %v", rl.issuer, err)
	}
	if cachedPub != nil && stillHolds(kl, t, cachedPub) {
		return cachedPub, nil
	}
	outcome, pub := verifyWith(kl, t)
	switch outcome {
	case verified:
		return pub, nil
	case badSignature:
		return nil, fail(http.StatusUnauthorized, MsgVerificationFails, "signature does not verify with the keys matching kid %.64q alg %s", t.kid, t.alg)
	}
	if kl2 := rl.keys.refetch(ctx, kl); kl2 != nil {
		outcome, pub := verifyWith(kl2, t)
		switch outcome {
		case verified:
			return pub, nil
		case badSignature:
			return nil, fail(http.StatusUnauthorized, MsgVerificationFails, "signature does not verify with the refreshed keys matching kid %.64q alg %s", t.kid, t.alg)
		}
		kl = kl2
	}
	return nil, fail(http.StatusUnauthorized, MsgKidAlgMismatch, "no key with kid %.64q for alg %s among kids %q", t.kid, t.alg, kl.kids)
}

// dropOutputs removes the headers the rules write, whoever sent them.
func (a *Authenticator) dropOutputs(r *http.Request) {
	for _, h := range a.outputs {
		r.Header.Del(h)
	}
}

// setOutputs writes outputPayloadToHeader and outputClaimToHeaders.
func setOutputs(r *http.Request, t *token, rl *rule) {
	if rl.payloadHeader != "" {
		r.Header.Set(rl.payloadHeader, t.payloadB64)
	}
	for _, ch := range rl.claimHeaders {
		v, ok := claimString(t.claims, ch.claim)
		if ok && httpguts.ValidHeaderFieldValue(v) {
			r.Header.Set(ch.header, v)
		}
	}
}

// claimString renders a claim as Envoy does for claim_to_headers: strings
// as they are, numbers and booleans as text, objects and lists as base64
// of their JSON.
func claimString(claims map[string]any, path []string) (string, bool) {
	var v any = claims
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[p]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return base64.StdEncoding.EncodeToString(b), true
	}
	return "", false
}
