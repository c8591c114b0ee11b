package convert

import (
	"fmt"
	"strings"

	"palisade.dev/palisade/internal/config"
)

// binding turns a ServiceRoleBinding and the ServiceRole it names into one
// ALLOW AuthorizationPolicy per service of the role: each subject is a
// `from`, each access rule a `to` (and `when` for constraints).
func (c *converter) binding(r *config.Resource, s *config.ServiceRoleBindingSpec) {
	roleName := s.Role
	if s.RoleRef != nil {
		roleName = s.RoleRef.Name
	}
	roleName = strings.TrimPrefix(roleName, "/")
	role := c.roles[r.Meta.Namespace+"/"+roleName]
	if role == nil {
		c.res.Docs = append(c.res.Docs, Doc{Notes: []string{from1(r), fmt.Sprintf("ServiceRole %s/%s not found: nothing converted", r.Meta.Namespace, roleName)}})
		return
	}
	rs := role.Spec.(*config.ServiceRoleSpec)
	var notes []string
	notes = append(notes, fmt.Sprintf("from %s (%s) and %s (%s)", r.Key(), r.Source, role.Key(), role.Source))
	if s.Mode == "PERMISSIVE" {
		notes = append(notes, "binding mode PERMISSIVE has no equivalent: add the annotation istio.io/dry-run: \"true\" to test first")
	}
	var froms []*subjectRule
	for _, sub := range s.Subjects {
		f, n := subject(sub)
		notes = append(notes, n...)
		froms = append(froms, f)
	}
	// Group the role's rules by service, keeping the role's order.
	type group struct {
		service string
		rules   []config.AccessRule
	}
	var groups []*group
	byService := map[string]*group{}
	for _, ar := range rs.Rules {
		for _, svc := range ar.Services {
			g := byService[svc]
			if g == nil {
				g = &group{service: svc}
				byService[svc] = g
				groups = append(groups, g)
			}
			g.rules = append(g.rules, ar)
		}
	}
	for _, g := range groups {
		spec := authzPolicy{Action: "ALLOW"}
		gnotes := append([]string(nil), notes...)
		name := dnsName(r.Meta.Name)
		switch {
		case g.service == "*":
			gnotes = append(gnotes, "services: [\"*\"] is every workload of the namespace")
		case strings.HasPrefix(g.service, "*") || strings.HasSuffix(g.service, "*"):
			// No selector matches a name pattern, and the whole namespace
			// would allow more than the legacy role did: fail closed.
			c.res.Docs = append(c.res.Docs, Doc{Notes: append(gnotes, fmt.Sprintf("%s: service pattern %q cannot be expressed as a workload selector, so its rules were left out (allowing the whole namespace would widen access); write an AuthorizationPolicy with a selector for each service it meant", role.Key(), g.service))})
			continue
		default:
			short, ns := splitService(g.service, r.Meta.Namespace)
			if ns != r.Meta.Namespace {
				gnotes = append(gnotes, fmt.Sprintf("service %s is outside the binding's namespace %s: move this policy to namespace %s", g.service, r.Meta.Namespace, ns))
			}
			spec.Selector = appSelector(short)
			gnotes = append(gnotes, fmt.Sprintf("service %s is selected by the label app=%s; check that its workloads carry it", g.service, short))
			if len(groups) > 1 {
				name = dnsName(r.Meta.Name + "-" + short)
			}
		}
		for _, ar := range g.rules {
			t, when, n, ok := accessRule(ar, r.Meta.Namespace)
			gnotes = append(gnotes, n...)
			if !ok {
				continue
			}
			for _, f := range froms {
				ru := rule{When: append(append([]condition(nil), f.when...), when...)}
				if !f.src.empty() {
					ru.From = []from{{Source: f.src}}
				}
				if t != nil {
					ru.To = []to{*t}
				}
				spec.Rules = append(spec.Rules, ru)
			}
		}
		c.emit("AuthorizationPolicy", name, r.Meta.Namespace, spec, dedupe(gnotes)...)
	}
}

// subjectRule is a converted subject: a source plus conditions.
type subjectRule struct {
	src  source
	when []condition
}

func subject(sub config.Subject) (*subjectRule, []string) {
	var notes []string
	src := &source{}
	var when []condition
	switch u := sub.User; {
	case u == "" || u == "*":
	case strings.Contains(u, "/ns/") && strings.Contains(u, "/sa/"):
		src.Principals = append(src.Principals, strings.TrimPrefix(u, "spiffe://"))
	default:
		src.RequestPrincipals = append(src.RequestPrincipals, u)
		notes = append(notes, fmt.Sprintf("user %q is not a service account identity; taken as a request principal (iss/sub of a JWT)", u))
	}
	src.Principals = append(src.Principals, trimAll(sub.Names)...)
	src.NotPrincipals = append(src.NotPrincipals, trimAll(sub.NotNames)...)
	src.Namespaces = append(src.Namespaces, sub.Namespaces...)
	src.NotNamespaces = append(src.NotNamespaces, sub.NotNamespaces...)
	src.IPBlocks = append(src.IPBlocks, sub.Ips...)
	src.NotIPBlocks = append(src.NotIPBlocks, sub.NotIps...)
	groups := sub.Groups
	if sub.Group != "" && sub.Group != "*" {
		groups = append([]string{sub.Group}, groups...)
	}
	if len(groups) > 0 {
		when = append(when, condition{Key: "request.auth.claims[groups]", Values: groups})
	}
	if len(sub.NotGroups) > 0 {
		when = append(when, condition{Key: "request.auth.claims[groups]", NotValues: sub.NotGroups})
	}
	for _, k := range sortedKeys(sub.Properties) {
		v := sub.Properties[k]
		switch {
		case k == "source.ip":
			src.IPBlocks = append(src.IPBlocks, v)
		case k == "source.namespace":
			src.Namespaces = append(src.Namespaces, v)
		case k == "source.principal" || k == "source.user":
			src.Principals = append(src.Principals, strings.TrimPrefix(v, "spiffe://"))
		case k == "request.auth.principal":
			src.RequestPrincipals = append(src.RequestPrincipals, v)
		default:
			when = append(when, condition{Key: k, Values: []string{v}})
		}
	}
	// The condition list travels next to the source in the rule.
	return &subjectRule{src: *src, when: when}, notes
}

func trimAll(vs []string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, strings.TrimPrefix(v, "spiffe://"))
	}
	return out
}

// accessRule converts one ServiceRole rule into an operation and
// conditions. "*" alone in paths or methods means any and is dropped.
// A constraint that cannot be carried over exactly makes the rule fail
// closed: ok is false and the rule is left out, since dropping only the
// constraint would allow more than the legacy rule did (a
// destination.labels constraint dropped would open the rule to every
// workload of the service).
func accessRule(ar config.AccessRule, ns string) (_ *to, _ []condition, _ []string, ok bool) {
	op := operation{
		Hosts: ar.Hosts, NotHosts: ar.NotHosts,
		Methods: dropStar(ar.Methods), NotMethods: ar.NotMethods,
		Paths: dropStar(ar.Paths), NotPaths: ar.NotPaths,
	}
	for _, p := range ar.Ports {
		op.Ports = append(op.Ports, itoa(p))
	}
	for _, p := range ar.NotPorts {
		op.NotPorts = append(op.NotPorts, itoa(p))
	}
	var when []condition
	var notes []string
	for _, c := range ar.Constraints {
		switch {
		case c.Key == "destination.port":
			op.Ports = append(op.Ports, c.Values...)
		case c.Key == "destination.ip" || strings.HasPrefix(c.Key, "request.headers[") || strings.HasPrefix(c.Key, "experimental.envoy.filters.") || c.Key == "connection.sni":
			when = append(when, condition{Key: c.Key, Values: c.Values})
		case c.Key == "destination.namespace" && containsOrStar(c.Values, ns):
			notes = append(notes, "constraint destination.namespace is implied by the policy's namespace and was dropped")
		case c.Key == "destination.namespace":
			notes = append(notes, fmt.Sprintf("constraint destination.namespace %v never matches in namespace %s: its rule matched nothing and was left out", c.Values, ns))
			return nil, nil, notes, false
		default:
			notes = append(notes, fmt.Sprintf("constraint %s cannot be carried over exactly: its rule was left out so that the policy allows no more than before (write it with a selector on those labels by hand)", c.Key))
			return nil, nil, notes, false
		}
	}
	if op.empty() {
		return nil, when, notes, true
	}
	return &to{Operation: op}, when, notes, true
}

func containsOrStar(vs []string, v string) bool {
	for _, x := range vs {
		if x == v || x == "*" {
			return true
		}
	}
	return false
}

func dropStar(vs []string) []string {
	for _, v := range vs {
		if v == "*" {
			return nil
		}
	}
	return vs
}

func dedupe(vs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
