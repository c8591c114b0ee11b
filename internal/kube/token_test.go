package kube

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/metadata"

	"palisade.dev/palisade/internal/ca"
)

func TestServiceAccountUser(t *testing.T) {
	for _, tc := range []struct {
		name, user, ns, sa string
		ok                 bool
	}{
		{name: "service account", user: "system:serviceaccount:shop:cart-sa", ns: "shop", sa: "cart-sa", ok: true},
		{name: "a person", user: "alice"},
		{name: "node", user: "system:node:worker-1"},
		{name: "no account", user: "system:serviceaccount:shop:"},
		{name: "no namespace", user: "system:serviceaccount::cart"},
		{name: "extra colon", user: "system:serviceaccount:shop:cart:x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, sa, ok := serviceAccountUser(tc.user)
			if ok != tc.ok || (ok && (ns != tc.ns || sa != tc.sa)) {
				t.Errorf("serviceAccountUser(%q) = %q, %q, %v", tc.user, ns, sa, ok)
			}
		})
	}
}

// The reviewer leaves calls without a bearer token, and join tokens, to
// the next authenticator; it never calls the API server for them.
func TestTokenReviewerLeavesOtherCredentials(t *testing.T) {
	r := &TokenReviewer{} // no client: a call to the API would panic
	for _, tc := range []struct {
		name string
		md   metadata.MD
	}{
		{name: "no metadata"},
		{name: "no authorization", md: metadata.Pairs("x", "y")},
		{name: "not bearer", md: metadata.Pairs("authorization", "Basic abc")},
		{name: "join token", md: metadata.Pairs("authorization", "Bearer "+ca.JoinTokenPrefix+"abc")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tc.md)
			}
			if _, err := r.Authenticate(ctx); !errors.Is(err, ca.ErrNoCredentials) {
				t.Errorf("Authenticate = %v, want ErrNoCredentials", err)
			}
		})
	}
}
