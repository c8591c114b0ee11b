package dashboard

import (
	"strconv"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/identity"
)

func peerSpec(r *config.Resource) *securityv1beta1.PeerAuthentication {
	return r.Spec.(*securityv1beta1.PeerAuthentication)
}

// spiffeID is a service account's SPIFFE ID, "" when it cannot be made.
func spiffeID(td, ns, sa string) string {
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return ""
	}
	id, err := identity.ForServiceAccount(t, ns, sa)
	if err != nil {
		return ""
	}
	return id.String()
}

func itoa(n int) string { return strconv.Itoa(n) }
