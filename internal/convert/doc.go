// Package convert turns Istio's pre-1.4 security kinds into today's:
// authentication.istio.io/v1alpha1 Policy into PeerAuthentication (and
// RequestAuthentication for origins), and rbac.istio.io/v1alpha1
// ClusterRbacConfig, ServiceRole and ServiceRoleBinding into
// AuthorizationPolicy, following Istio's migration guidance: RBAC turned
// on for a scope becomes an allow-nothing policy there, and each binding
// becomes an ALLOW policy for the services its role names. Whatever
// cannot be carried over exactly is said in a comment on the output.
package convert
