package convert

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"palisade.dev/palisade/internal/config"
)

// Doc is one converted resource with the notes to print above it.
type Doc struct {
	Notes  []string
	Object any
}

// Result is everything a conversion produced.
type Result struct {
	Docs []Doc
	// Skipped lists resources that are not legacy kinds and are left as
	// they are.
	Skipped []string
}

// Convert turns the legacy resources of rs into current kinds. rootNS is
// the mesh's root namespace (where a mesh-wide allow-nothing policy goes).
func Convert(rs []*config.Resource, rootNS string) *Result {
	c := &converter{root: rootNS, res: &Result{}, roles: map[string]*config.Resource{}}
	for _, r := range rs {
		if r.Kind == config.KindServiceRole {
			c.roles[r.Meta.Namespace+"/"+r.Meta.Name] = r
		}
	}
	for _, r := range rs {
		switch s := r.Spec.(type) {
		case *config.LegacyPolicy:
			c.policy(r, s)
		case *config.ClusterRbacConfigSpec:
			c.rbacConfig(r, s)
		case *config.ServiceRoleBindingSpec:
			c.binding(r, s)
		case *config.ServiceRoleSpec:
			// Converted through the bindings that name it.
		default:
			c.res.Skipped = append(c.res.Skipped, r.Key().String())
		}
	}
	return c.res
}

type converter struct {
	root  string
	res   *Result
	roles map[string]*config.Resource
}

func (c *converter) emit(kind, name, ns string, spec any, notes ...string) {
	c.res.Docs = append(c.res.Docs, Doc{Notes: notes, Object: object{
		APIVersion: "security.istio.io/v1", Kind: kind, Metadata: meta{Name: name, Namespace: ns}, Spec: spec,
	}})
}

func from1(r *config.Resource) string { return fmt.Sprintf("from %s (%s)", r.Key(), r.Source) }

// appSelector selects the workloads of a service by its `app` label, the
// Kubernetes convention the old API relied on implicitly.
func appSelector(service string) *selector {
	return &selector{MatchLabels: map[string]string{"app": service}}
}

func (c *converter) policy(r *config.Resource, s *config.LegacyPolicy) {
	mode := ""
	var notes []string
	notes = append(notes, from1(r))
	for _, p := range s.Peers {
		if p.MTLS != nil {
			mode = "STRICT"
			if p.MTLS.Mode == "PERMISSIVE" {
				mode = "PERMISSIVE"
			}
		}
		if p.JWT != nil {
			notes = append(notes, "peers[].jwt has no equivalent and was dropped")
		}
	}
	if mode == "" {
		mode = "PERMISSIVE"
		notes = append(notes, "no mtls peer method: plaintext was accepted, so the mode is PERMISSIVE")
	}
	if s.PeerIsOptional {
		mode = "PERMISSIVE"
		notes = append(notes, "peerIsOptional: true accepted plaintext, so the mode is PERMISSIVE")
	}
	targets := s.Targets
	if len(targets) == 0 {
		targets = []config.LegacyTargetSelector{{}}
	}
	for _, t := range targets {
		spec := peerAuthn{Mtls: &mtls{Mode: mode}}
		name := r.Meta.Name
		tnotes := append([]string(nil), notes...)
		if t.Name != "" {
			spec.Selector = appSelector(t.Name)
			name = dnsName(r.Meta.Name + "-" + t.Name)
			tnotes = append(tnotes, fmt.Sprintf("target service %q is selected by the label app=%s; check that its workloads carry it", t.Name, t.Name))
			if len(t.Ports) > 0 {
				spec.PortLevelMtls = map[uint32]mtls{}
				spec.Mtls = nil
				for _, p := range t.Ports {
					if p.Number == 0 {
						tnotes = append(tnotes, fmt.Sprintf("port %q is named; PeerAuthentication needs the workload's port number", p.Name))
						continue
					}
					spec.PortLevelMtls[p.Number] = mtls{Mode: mode}
				}
				if len(spec.PortLevelMtls) == 0 {
					spec.PortLevelMtls, spec.Mtls = nil, &mtls{Mode: mode}
				}
			}
		}
		c.emit("PeerAuthentication", name, r.Meta.Namespace, spec, tnotes...)
		if len(s.Origins) > 0 {
			c.origins(r, s, name, spec.Selector)
		}
	}
}

func (c *converter) origins(r *config.Resource, s *config.LegacyPolicy, name string, sel *selector) {
	notes := []string{from1(r) + " origins"}
	spec := requestAuthn{Selector: sel}
	for _, o := range s.Origins {
		j := o.JWT
		if j == nil {
			continue
		}
		jr := jwtRule{Issuer: j.Issuer, JwksURI: j.JwksURI, Jwks: j.Jwks, Audiences: j.Audiences, FromParams: j.JwtParams}
		for _, h := range j.JwtHeaders {
			jr.FromHeaders = append(jr.FromHeaders, fromHeader{Name: h})
		}
		if jr.JwksURI == "" && jr.Jwks == "" {
			notes = append(notes, fmt.Sprintf("issuer %q had no jwksUri: fill one in (the old API discovered it through OpenID discovery)", j.Issuer))
		}
		if len(j.TriggerRules) > 0 {
			notes = append(notes, fmt.Sprintf("issuer %q triggerRules (paths where the token was checked) have no equivalent: express them with an AuthorizationPolicy on paths", j.Issuer))
		}
		spec.JwtRules = append(spec.JwtRules, jr)
	}
	if s.PrincipalBinding == "USE_ORIGIN" {
		notes = append(notes, "principalBinding USE_ORIGIN: use request principals (requestPrincipals) in AuthorizationPolicy where principals meant the end user")
	}
	c.emit("RequestAuthentication", name, r.Meta.Namespace, spec, notes...)
	if !s.OriginIsOptional {
		c.emit("AuthorizationPolicy", dnsName(name+"-require-jwt"), r.Meta.Namespace, authzPolicy{
			Selector: sel, Action: "DENY",
			Rules: []rule{{From: []from{{Source: source{NotRequestPrincipals: []string{"*"}}}}}},
		}, from1(r), "origins were mandatory (originIsOptional: false): requests without a valid token are denied")
	}
}

// rbacConfig follows Istio's migration guidance: where RBAC was on, an
// ALLOW policy with an empty spec allows nothing, so only what the
// bindings allow gets through.
func (c *converter) rbacConfig(r *config.Resource, s *config.ClusterRbacConfigSpec) {
	note := from1(r)
	if s.EnforcementMode == "PERMISSIVE" {
		note += "; enforcementMode PERMISSIVE has no equivalent: add the annotation istio.io/dry-run: \"true\" to test first"
	}
	switch s.Mode {
	case config.RbacOff, "":
		c.res.Docs = append(c.res.Docs, Doc{Notes: []string{note, "mode OFF: RBAC was disabled; nothing to convert"}})
	case config.RbacOn:
		c.emit("AuthorizationPolicy", "allow-nothing", c.root, emptySpec{}, note, "mode ON: deny everything mesh-wide unless a policy allows it")
	case config.RbacOnWithInclusion:
		if s.Inclusion == nil {
			return
		}
		for _, ns := range s.Inclusion.Namespaces {
			c.emit("AuthorizationPolicy", "allow-nothing", ns, emptySpec{}, note, fmt.Sprintf("ON_WITH_INCLUSION: namespace %s denies everything unless a policy allows it", ns))
		}
		for _, svc := range s.Inclusion.Services {
			short, ns := splitService(svc, "default")
			c.emit("AuthorizationPolicy", dnsName("allow-nothing-"+short), ns, authzPolicy{Selector: appSelector(short)}, note,
				fmt.Sprintf("ON_WITH_INCLUSION: service %s denies everything unless a policy allows it (selected by app=%s)", svc, short))
		}
	case config.RbacOnWithExclusion:
		c.emit("AuthorizationPolicy", "allow-nothing", c.root, emptySpec{}, note, "ON_WITH_EXCLUSION: deny everything mesh-wide unless a policy allows it")
		if s.Exclusion == nil {
			return
		}
		for _, ns := range s.Exclusion.Namespaces {
			c.emit("AuthorizationPolicy", "allow-all", ns, authzPolicy{Rules: []rule{{}}}, note, fmt.Sprintf("ON_WITH_EXCLUSION: namespace %s stays open", ns))
		}
		for _, svc := range s.Exclusion.Services {
			short, ns := splitService(svc, "default")
			c.emit("AuthorizationPolicy", dnsName("allow-all-"+short), ns, authzPolicy{Selector: appSelector(short), Rules: []rule{{}}}, note,
				fmt.Sprintf("ON_WITH_EXCLUSION: service %s stays open (selected by app=%s)", svc, short))
		}
	}
}

// splitService splits "svc.ns.svc.cluster.local", "svc.ns" or "svc" into
// the short name and namespace.
func splitService(s, defNS string) (string, string) {
	parts := strings.Split(s, ".")
	if len(parts) >= 2 {
		return parts[0], parts[1]
	}
	return s, defNS
}

// Marshal renders a result as multi-document YAML with the notes as
// comments.
func (r *Result) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Converted from Istio's v1alpha1 authentication and RBAC resources.\n")
	if len(r.Skipped) > 0 {
		b.WriteString("# Left as they are (not legacy kinds): " + strings.Join(r.Skipped, ", ") + ".\n")
	}
	for _, d := range r.Docs {
		b.WriteString("---\n")
		for _, n := range d.Notes {
			b.WriteString("# " + strings.ReplaceAll(n, "\n", " ") + "\n")
		}
		if d.Object == nil {
			continue
		}
		var out bytes.Buffer
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		if err := enc.Encode(d.Object); err != nil {
			return nil, fmt.Errorf("convert: marshal: %w", err)
		}
		b.Write(out.Bytes())
	}
	return b.Bytes(), nil
}

func dnsName(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-.")
	if len(out) > 253 {
		out = out[:253]
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }
