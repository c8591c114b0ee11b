package ca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/metadata"

	"palisade.dev/palisade/internal/identity"
)

// JoinTokenPrefix starts every join token, so the join-token authenticator
// can tell its tokens from other bearer tokens (a Kubernetes service account
// JWT) and leave those to the next authenticator.
const JoinTokenPrefix = "palisade-join."

// Join token failures. Each maps to gRPC Unauthenticated.
var (
	ErrTokenUnknown = errors.New("join token not recognized")
	ErrTokenUsed    = errors.New("join token already used")
	ErrTokenExpired = errors.New("join token expired")
)

// JoinTokens issues and redeems one-time join tokens, each bound to one
// namespace and service account, with an expiry. Only a SHA-256 of each token
// is kept. Tokens live in memory: a restart of the control plane voids them.
// JoinTokens is an Authenticator of `authorization: Bearer <token>` metadata.
type JoinTokens struct {
	td    spiffeid.TrustDomain
	clock func() time.Time

	mu     sync.Mutex
	byHash map[[sha256.Size]byte]*tokenEntry
}

type tokenEntry struct {
	id      spiffeid.ID
	expires time.Time
	used    bool
}

var _ Authenticator = (*JoinTokens)(nil)

// NewJoinTokens returns an empty token store for trust domain td; a nil clock
// means time.Now.
func NewJoinTokens(td spiffeid.TrustDomain, clock func() time.Time) *JoinTokens {
	if clock == nil {
		clock = time.Now
	}
	return &JoinTokens{td: td, clock: clock, byHash: map[[sha256.Size]byte]*tokenEntry{}}
}

// Issue makes a token that proves identity ns/sa once, within ttl.
func (j *JoinTokens) Issue(ns, sa string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("ca: issue join token: ttl must be positive, got %s", ttl)
	}
	id, err := identity.ForServiceAccount(j.td, ns, sa)
	if err != nil {
		return "", fmt.Errorf("ca: issue join token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("ca: issue join token: %w", err)
	}
	token := JoinTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := j.clock()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sweepLocked(now)
	j.byHash[sha256.Sum256([]byte(token))] = &tokenEntry{id: id, expires: now.Add(ttl)}
	return token, nil
}

// Redeem spends token and returns the identity it proves. A token works once.
func (j *JoinTokens) Redeem(token string) (spiffeid.ID, error) {
	h := sha256.Sum256([]byte(token))
	now := j.clock()
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.byHash[h]
	switch {
	case !ok:
		return spiffeid.ID{}, ErrTokenUnknown
	case e.used:
		return spiffeid.ID{}, ErrTokenUsed
	case !now.Before(e.expires):
		return spiffeid.ID{}, ErrTokenExpired
	}
	e.used = true // kept until expiry so a replay is reported as such
	return e.id, nil
}

// tokenRetention is how long a spent or expired token's hash is kept, so
// that a late replay is reported as such rather than as unknown.
const tokenRetention = 24 * time.Hour

func (j *JoinTokens) sweepLocked(now time.Time) {
	for h, e := range j.byHash {
		if !now.Before(e.expires.Add(tokenRetention)) {
			delete(j.byHash, h)
		}
	}
}

// Authenticate redeems the join token of the call's
// `authorization: Bearer palisade-join.…` metadata. It returns
// ErrNoCredentials when there is none, so a chain can try the next method.
func (j *JoinTokens) Authenticate(ctx context.Context) (spiffeid.ID, error) {
	tok, ok := bearerToken(ctx)
	if !ok || !strings.HasPrefix(tok, JoinTokenPrefix) {
		return spiffeid.ID{}, ErrNoCredentials
	}
	id, err := j.Redeem(tok)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("ca: join token: %w", err)
	}
	return id, nil
}

// bearerToken returns the token of the first `authorization: Bearer` value.
func bearerToken(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		scheme, tok, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && tok != "" {
			return strings.TrimSpace(tok), true
		}
	}
	return "", false
}
