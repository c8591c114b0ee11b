package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/metadata"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/identity"
)

// DefaultAudience is the audience of the projected token a sidecar
// presents to the CA, as Istio's third-party JWT policy has it.
const DefaultAudience = "istio-ca"

// Extra keys the API server sets on a pod-bound token's user info.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// TokenReviewer authenticates a CreateCertificate call by the Kubernetes
// service-account token it carries (`authorization: Bearer <JWT>`), asking
// the API server with the TokenReview API. It yields the SPIFFE ID of
// exactly the token's namespace and service account; a pod-bound token
// also needs its pod to exist still, with the same UID. Join tokens
// (ca.JoinTokenPrefix) are left to the join-token authenticator.
type TokenReviewer struct {
	Client      kubernetes.Interface
	TrustDomain spiffeid.TrustDomain
	// Audiences the token must be for; default DefaultAudience.
	Audiences []string
}

var _ ca.Authenticator = (*TokenReviewer)(nil)

// ErrTokenRefused is wrapped by every refusal of a token.
var ErrTokenRefused = errors.New("service account token refused")

// Authenticate implements ca.Authenticator.
func (t *TokenReviewer) Authenticate(ctx context.Context) (spiffeid.ID, error) {
	tok, ok := bearer(ctx)
	if !ok || strings.HasPrefix(tok, ca.JoinTokenPrefix) {
		return spiffeid.ID{}, ca.ErrNoCredentials
	}
	return t.review(ctx, tok) // the CA server logs a refusal's reason
}

func (t *TokenReviewer) review(ctx context.Context, tok string) (spiffeid.ID, error) {
	auds := t.Audiences
	if len(auds) == 0 {
		auds = []string{DefaultAudience}
	}
	res, err := t.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: tok, Audiences: auds},
	}, metav1.CreateOptions{})
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: TokenReview: %w", ErrTokenRefused, err)
	}
	st := res.Status
	if !st.Authenticated {
		reason := st.Error
		if reason == "" {
			reason = "not authenticated"
		}
		return spiffeid.ID{}, fmt.Errorf("%w: %s (audiences wanted %v)", ErrTokenRefused, reason, auds)
	}
	if !anyIn(st.Audiences, auds) {
		return spiffeid.ID{}, fmt.Errorf("%w: token audiences %v, want one of %v", ErrTokenRefused, st.Audiences, auds)
	}
	ns, sa, ok := serviceAccountUser(st.User.Username)
	if !ok {
		return spiffeid.ID{}, fmt.Errorf("%w: user %q is not a service account", ErrTokenRefused, st.User.Username)
	}
	if pods := st.User.Extra[extraPodName]; len(pods) > 0 {
		pod, err := t.Client.CoreV1().Pods(ns).Get(ctx, pods[0], metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return spiffeid.ID{}, fmt.Errorf("%w: bound pod %s/%s no longer exists", ErrTokenRefused, ns, pods[0])
		case err != nil:
			return spiffeid.ID{}, fmt.Errorf("%w: get bound pod %s/%s: %w", ErrTokenRefused, ns, pods[0], err)
		}
		if uids := st.User.Extra[extraPodUID]; len(uids) > 0 && string(pod.UID) != uids[0] {
			return spiffeid.ID{}, fmt.Errorf("%w: bound pod %s/%s was replaced (uid %s, token for %s)", ErrTokenRefused, ns, pods[0], pod.UID, uids[0])
		}
		if pod.DeletionTimestamp != nil {
			return spiffeid.ID{}, fmt.Errorf("%w: bound pod %s/%s is being deleted", ErrTokenRefused, ns, pods[0])
		}
		if pod.Spec.ServiceAccountName != sa {
			return spiffeid.ID{}, fmt.Errorf("%w: bound pod %s/%s runs as %q, token for %q", ErrTokenRefused, ns, pods[0], pod.Spec.ServiceAccountName, sa)
		}
	}
	id, err := identity.ForServiceAccount(t.TrustDomain, ns, sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrTokenRefused, err)
	}
	return id, nil
}

// serviceAccountUser reads "system:serviceaccount:NS:SA".
func serviceAccountUser(u string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(u, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	return ns, sa, ok && ns != "" && sa != "" && !strings.Contains(sa, ":")
}

func bearer(ctx context.Context) (string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", false
	}
	for _, v := range md.Get("authorization") {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok && tok != "" {
			return tok, true
		}
	}
	return "", false
}

func anyIn(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}
