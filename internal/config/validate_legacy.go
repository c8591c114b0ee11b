package config

import (
	"fmt"
	"strings"
)

func (c *checker) legacyPolicy(s *LegacyPolicy) {
	for i, t := range s.Targets {
		if t.Name == "" {
			c.errorf(fmt.Sprintf("spec.targets[%d].name", i), "target name is required")
		}
	}
	for i, p := range s.Peers {
		pp := fmt.Sprintf("spec.peers[%d]", i)
		switch {
		case p.MTLS == nil && p.JWT == nil:
			c.errorf(pp, "peer method must be mtls or jwt")
		case p.MTLS != nil:
			if m := p.MTLS.Mode; m != "" && m != "STRICT" && m != "PERMISSIVE" {
				c.errorf(pp+".mtls.mode", "invalid mode %q: must be STRICT or PERMISSIVE", m)
			}
		}
	}
	for i, o := range s.Origins {
		op := fmt.Sprintf("spec.origins[%d].jwt", i)
		if o.JWT == nil {
			c.errorf(op, "origin must have jwt")
			continue
		}
		if o.JWT.Issuer == "" {
			c.errorf(op+".issuer", "issuer must be set")
		}
		if o.JWT.Jwks != "" && o.JWT.JwksURI != "" {
			c.errorf(op+".jwks", "only one of jwks and jwksUri may be set")
		}
	}
	if b := s.PrincipalBinding; b != "" && b != "USE_PEER" && b != "USE_ORIGIN" {
		c.errorf("spec.principalBinding", "invalid principalBinding %q: must be USE_PEER or USE_ORIGIN", b)
	}
}

// legacyConstraintKeys are the ServiceRole constraint keys the old API
// accepted; keys ending in "[" take a bracketed name.
var legacyConstraintKeys = []string{
	"destination.ip", "destination.port", "destination.labels[", "destination.name",
	"destination.namespace", "destination.user", "request.headers[", "experimental.envoy.filters.",
	"connection.sni",
}

func (c *checker) serviceRole(s *ServiceRoleSpec) {
	if len(s.Rules) == 0 {
		c.errorf("spec.rules", "at least 1 rule must be specified")
	}
	for i, r := range s.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		if len(r.Services) == 0 {
			c.errorf(p+".services", "at least 1 service must be specified")
		}
		c.nonEmpty(p+".services", r.Services)
		c.nonEmpty(p+".methods", r.Methods)
		c.nonEmpty(p+".paths", r.Paths)
		for _, l := range []struct {
			name  string
			ports []int32
		}{{"ports", r.Ports}, {"notPorts", r.NotPorts}} {
			for j, port := range l.ports {
				if port < 1 || port > 65535 {
					c.errorf(fmt.Sprintf("%s.%s[%d]", p, l.name, j), "port number %d must be in the range 1..65535", port)
				}
			}
		}
		for j, con := range r.Constraints {
			cp := fmt.Sprintf("%s.constraints[%d]", p, j)
			if con.Key == "" {
				c.errorf(cp+".key", "key cannot be empty")
			} else if !legacyKeyKnown(con.Key, legacyConstraintKeys) {
				c.errorf(cp+".key", "unknown constraint key %q", con.Key)
			}
			if len(con.Values) == 0 {
				c.errorf(cp+".values", "at least 1 value must be specified")
			}
		}
	}
}

// legacyPropertyKeys are the subject property keys of the old API.
var legacyPropertyKeys = []string{
	"source.ip", "source.namespace", "source.principal", "source.user", "request.headers[",
	"request.auth.principal", "request.auth.audiences", "request.auth.presenter", "request.auth.claims[",
}

func legacyKeyKnown(k string, keys []string) bool {
	for _, known := range keys {
		if strings.HasSuffix(known, "[") || strings.HasSuffix(known, ".") {
			if strings.HasPrefix(k, known) && (strings.HasSuffix(known, ".") || strings.HasSuffix(k, "]") && len(k) > len(known)+1) {
				return true
			}
		} else if k == known {
			return true
		}
	}
	return false
}

func (c *checker) serviceRoleBinding(s *ServiceRoleBindingSpec) {
	if len(s.Subjects) == 0 {
		c.errorf("spec.subjects", "at least 1 subject must be specified")
	}
	for i, sub := range s.Subjects {
		p := fmt.Sprintf("spec.subjects[%d]", i)
		if sub.User == "" && sub.Group == "" && len(sub.Properties) == 0 && len(sub.Names) == 0 &&
			len(sub.NotNames) == 0 && len(sub.Groups) == 0 && len(sub.NotGroups) == 0 && len(sub.Namespaces) == 0 &&
			len(sub.NotNamespaces) == 0 && len(sub.Ips) == 0 && len(sub.NotIps) == 0 {
			c.errorf(p, "empty subjects are not allowed")
		}
		for k := range sub.Properties {
			if !legacyKeyKnown(k, legacyPropertyKeys) {
				c.errorf(p+".properties."+k, "unknown property key %q", k)
			}
		}
	}
	switch {
	case s.RoleRef == nil && s.Role == "":
		c.errorf("spec.roleRef", "roleRef or role must be specified")
	case s.RoleRef != nil && s.Role != "":
		c.errorf("spec.role", "only one of roleRef and role may be specified")
	case s.RoleRef != nil:
		if s.RoleRef.Kind != "ServiceRole" {
			c.errorf("spec.roleRef.kind", "kind set to %q, currently the only accepted value is \"ServiceRole\"", s.RoleRef.Kind)
		}
		if s.RoleRef.Name == "" {
			c.errorf("spec.roleRef.name", "name cannot be empty")
		}
	}
	if m := s.Mode; m != "" && m != "ENFORCED" && m != "PERMISSIVE" {
		c.errorf("spec.mode", "invalid mode %q: must be ENFORCED or PERMISSIVE", m)
	}
}

func (c *checker) clusterRbacConfig(s *ClusterRbacConfigSpec) {
	if c.r.Meta.Name != "" && c.r.Meta.Name != "default" {
		c.errorf("metadata.name", "ClusterRbacConfig must be named \"default\"")
	}
	switch s.Mode {
	case "", RbacOff, RbacOn:
	case RbacOnWithInclusion:
		if s.Inclusion == nil || len(s.Inclusion.Namespaces)+len(s.Inclusion.Services) == 0 {
			c.errorf("spec.inclusion", "mode ON_WITH_INCLUSION needs inclusion namespaces or services")
		}
	case RbacOnWithExclusion:
	default:
		c.errorf("spec.mode", "invalid mode %q: must be OFF, ON, ON_WITH_INCLUSION or ON_WITH_EXCLUSION", s.Mode)
	}
	if m := s.EnforcementMode; m != "" && m != "ENFORCED" && m != "PERMISSIVE" {
		c.errorf("spec.enforcementMode", "invalid enforcementMode %q: must be ENFORCED or PERMISSIVE", m)
	}
}
