package config

import (
	"bytes"
	"encoding/json"
)

// The legacy kinds below are Istio's pre-1.4 security APIs
// (authentication.istio.io/v1alpha1 Policy and rbac.istio.io/v1alpha1
// ServiceRole, ServiceRoleBinding, ClusterRbacConfig), with the field names
// of the old Istio API. Palisade never enforces them; `palisade convert`
// turns them into PeerAuthentication, RequestAuthentication and
// AuthorizationPolicy.

// LegacyPolicy is the spec of authentication.istio.io/v1alpha1 Policy.
type LegacyPolicy struct {
	// Targets narrows the policy to services (by short name) and ports;
	// empty means every service of the namespace.
	Targets []LegacyTargetSelector `json:"targets,omitempty"`
	// Peers lists the peer authentication methods; only mtls is carried
	// over by convert.
	Peers          []LegacyPeerMethod `json:"peers,omitempty"`
	PeerIsOptional bool               `json:"peerIsOptional,omitempty"`
	// Origins lists the accepted end-user JWT issuers.
	Origins          []LegacyOriginMethod `json:"origins,omitempty"`
	OriginIsOptional bool                 `json:"originIsOptional,omitempty"`
	// PrincipalBinding is USE_PEER (default) or USE_ORIGIN.
	PrincipalBinding string `json:"principalBinding,omitempty"`
}

// LegacyTargetSelector names a service and, optionally, some of its ports.
type LegacyTargetSelector struct {
	Name   string             `json:"name"`
	Labels map[string]string  `json:"labels,omitempty"`
	Ports  []LegacyPortSelect `json:"ports,omitempty"`
}

// LegacyPortSelect selects a port by number or by name.
type LegacyPortSelect struct {
	Number uint32 `json:"number,omitempty"`
	Name   string `json:"name,omitempty"`
}

// LegacyPeerMethod is one entry of Policy.peers: mtls or jwt.
type LegacyPeerMethod struct {
	// MTLS is non-nil whenever the key is written, even as `mtls:` or
	// `mtls: {}`, both of which mean STRICT mutual TLS.
	MTLS *LegacyMutualTLS `json:"mtls,omitempty"`
	JWT  *LegacyJWT       `json:"jwt,omitempty"`
}

// LegacyMutualTLS holds the mtls mode: STRICT (default) or PERMISSIVE.
type LegacyMutualTLS struct {
	Mode     string `json:"mode,omitempty"`
	AllowTLS bool   `json:"allowTls,omitempty"`
}

// LegacyOriginMethod is one entry of Policy.origins.
type LegacyOriginMethod struct {
	JWT *LegacyJWT `json:"jwt,omitempty"`
}

// LegacyJWT is the old JWT issuer description.
type LegacyJWT struct {
	Issuer       string              `json:"issuer,omitempty"`
	Audiences    []string            `json:"audiences,omitempty"`
	JwksURI      string              `json:"jwksUri,omitempty"`
	Jwks         string              `json:"jwks,omitempty"`
	JwtHeaders   []string            `json:"jwtHeaders,omitempty"`
	JwtParams    []string            `json:"jwtParams,omitempty"`
	TriggerRules []LegacyTriggerRule `json:"triggerRules,omitempty"`
}

// LegacyTriggerRule limits where a JWT is checked.
type LegacyTriggerRule struct {
	ExcludedPaths []LegacyStringMatch `json:"excludedPaths,omitempty"`
	IncludedPaths []LegacyStringMatch `json:"includedPaths,omitempty"`
}

// LegacyStringMatch is one of exact, prefix, suffix, regex.
type LegacyStringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Suffix string `json:"suffix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// ServiceRoleSpec is the spec of rbac.istio.io/v1alpha1 ServiceRole.
type ServiceRoleSpec struct {
	Rules []AccessRule `json:"rules"`
}

// AccessRule is one permission of a ServiceRole.
type AccessRule struct {
	// Services are service names (FQDN, short name, or "*", with prefix
	// or suffix wildcards) the rule applies to.
	Services    []string     `json:"services,omitempty"`
	Hosts       []string     `json:"hosts,omitempty"`
	NotHosts    []string     `json:"notHosts,omitempty"`
	Paths       []string     `json:"paths,omitempty"`
	NotPaths    []string     `json:"notPaths,omitempty"`
	Methods     []string     `json:"methods,omitempty"`
	NotMethods  []string     `json:"notMethods,omitempty"`
	Ports       []int32      `json:"ports,omitempty"`
	NotPorts    []int32      `json:"notPorts,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
}

// Constraint is a key (destination.ip, destination.port,
// destination.labels[x], request.headers[x], ...) and its accepted values.
type Constraint struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

// ServiceRoleBindingSpec is the spec of rbac.istio.io/v1alpha1
// ServiceRoleBinding.
type ServiceRoleBindingSpec struct {
	Subjects []Subject `json:"subjects"`
	RoleRef  *RoleRef  `json:"roleRef,omitempty"`
	// Role is the later shorthand for roleRef: "name" or "/name" for a
	// ClusterRbacConfig-scoped role.
	Role string `json:"role,omitempty"`
	// Mode is ENFORCED (default) or PERMISSIVE.
	Mode string `json:"mode,omitempty"`
}

// Subject is who a binding grants the role to.
type Subject struct {
	// User is a peer principal ("cluster.local/ns/x/sa/y") or a request
	// principal, or "*".
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// Properties are extra conditions: source.ip, source.namespace,
	// source.principal, request.headers[x], request.auth.claims[x], ...
	Properties    map[string]string `json:"properties,omitempty"`
	Names         []string          `json:"names,omitempty"`
	NotNames      []string          `json:"notNames,omitempty"`
	Groups        []string          `json:"groups,omitempty"`
	NotGroups     []string          `json:"notGroups,omitempty"`
	Namespaces    []string          `json:"namespaces,omitempty"`
	NotNamespaces []string          `json:"notNamespaces,omitempty"`
	Ips           []string          `json:"ips,omitempty"`
	NotIps        []string          `json:"notIps,omitempty"`
}

// RoleRef names the ServiceRole (in the binding's namespace).
type RoleRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// ClusterRbacConfigSpec is the spec of rbac.istio.io/v1alpha1
// ClusterRbacConfig (cluster scoped, conventionally named "default").
type ClusterRbacConfigSpec struct {
	// Mode is OFF, ON, ON_WITH_INCLUSION or ON_WITH_EXCLUSION.
	Mode      string       `json:"mode,omitempty"`
	Inclusion *RbacTargets `json:"inclusion,omitempty"`
	Exclusion *RbacTargets `json:"exclusion,omitempty"`
	// EnforcementMode is ENFORCED (default) or PERMISSIVE.
	EnforcementMode string `json:"enforcementMode,omitempty"`
}

// RbacTargets lists services (FQDN) and namespaces.
type RbacTargets struct {
	Services   []string `json:"services,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// Cluster RBAC modes.
const (
	RbacOff             = "OFF"
	RbacOn              = "ON"
	RbacOnWithInclusion = "ON_WITH_INCLUSION"
	RbacOnWithExclusion = "ON_WITH_EXCLUSION"
)

// UnmarshalJSON keeps `mtls:` with no value (null) as STRICT mutual TLS,
// as the old API did, instead of dropping it.
func (p *LegacyPeerMethod) UnmarshalJSON(b []byte) error {
	type plain LegacyPeerMethod
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v plain
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if _, ok := raw["mtls"]; ok && v.MTLS == nil {
		v.MTLS = &LegacyMutualTLS{}
	}
	*p = LegacyPeerMethod(v)
	return nil
}
