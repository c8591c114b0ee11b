package kubeapi

import (
	"context"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The harness's own check: the API server answers kubectl, a Pod can be
// stored, and a token bound to it passes TokenReview for its audience and
// names its service account and pod, while the wrong audience fails.
func TestClusterTokenForPod(t *testing.T) {
	c := Start(t)
	ctx := context.Background()
	c.Namespace(t, "demo", map[string]string{"istio-injection": "enabled"})
	c.ServiceAccount(t, "demo", "app")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "app-1"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			Containers:         []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
		},
	}
	if _, err := c.Client.CoreV1().Pods("demo").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := c.Kubectl("get", "namespace", "demo", "-o", "jsonpath={.metadata.labels.istio-injection}")
	if err != nil || out != "enabled" {
		t.Fatalf("kubectl get namespace: %q, %v", out, err)
	}

	tok := c.PodToken(t, "demo", "app-1", []string{"istio-ca"}, 10*time.Minute)
	review := func(aud string) *authenticationv1.TokenReviewStatus {
		tr, err := c.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: []string{aud}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return &tr.Status
	}
	st := review("istio-ca")
	if !st.Authenticated || st.User.Username != "system:serviceaccount:demo:app" {
		t.Fatalf("TokenReview for istio-ca: %+v", st)
	}
	if got := st.User.Extra["authentication.kubernetes.io/pod-name"]; len(got) != 1 || got[0] != "app-1" {
		t.Errorf("pod-name extra = %v, want [app-1]", got)
	}
	if st := review("kubernetes"); st.Authenticated {
		t.Errorf("a token for istio-ca passed TokenReview for another audience: %+v", st)
	}

	// Deleting the pod invalidates the token bound to it, once the API
	// server's token cache (10 s for a success) has let the entry go.
	if err := c.Client.CoreV1().Pods("demo").Delete(ctx, "app-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := review("istio-ca")
		if !st.Authenticated {
			if st.Error == "" {
				t.Errorf("refused without a reason: %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a deleted pod's token still authenticates: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
