package config

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// Validate checks r with the rules of Istio's validating webhook (for
// Istio kinds) and Palisade's own rules (for the others). It returns every
// problem joined with errors.Join, each a *FieldError. Decode calls it.
func Validate(r *Resource) error {
	if r == nil {
		return errors.New("config: validate: nil resource")
	}
	c := &checker{r: r}
	c.meta()
	switch s := r.Spec.(type) {
	case *securityv1beta1.AuthorizationPolicy:
		c.authorizationPolicy(s)
	case *securityv1beta1.PeerAuthentication:
		c.peerAuthentication(s)
	case *securityv1beta1.RequestAuthentication:
		c.requestAuthentication(s)
	case *networkingv1alpha3.DestinationRule:
		c.destinationRule(s)
	case *networkingv1alpha3.ServiceEntry:
		c.serviceEntry(s)
	case *networkingv1alpha3.WorkloadEntry:
		c.workloadEntry("spec", s)
	case *networkingv1alpha3.Gateway:
		c.gateway(s)
	case *networkingv1alpha3.VirtualService:
		c.virtualService(s)
	case *WorkloadSpec:
		c.workload(s)
	case *LegacyPolicy:
		c.legacyPolicy(s)
	case *ServiceRoleSpec:
		c.serviceRole(s)
	case *ServiceRoleBindingSpec:
		c.serviceRoleBinding(s)
	case *ClusterRbacConfigSpec:
		c.clusterRbacConfig(s)
	}
	return errors.Join(c.errs...)
}

// checker gathers the problems of one resource.
type checker struct {
	r    *Resource
	errs []error
}

func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, c.r.fieldError(path, format, args...))
}

// written reports whether path was present in the source YAML (as opposed
// to absent): protojson decodes `from: []` and a missing `from` alike.
func (c *checker) written(path string) bool {
	_, ok := c.r.lines[path]
	return ok
}

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	headerName       = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)
)

// IsDNS1123Label reports whether s is a valid DNS-1123 label (at most 63
// characters of [a-z0-9-], starting and ending alphanumeric).
func IsDNS1123Label(s string) bool { return len(s) <= 63 && dns1123Label.MatchString(s) }

// IsDNS1123Subdomain reports whether s is a valid DNS-1123 subdomain.
func IsDNS1123Subdomain(s string) bool { return len(s) <= 253 && dns1123Subdomain.MatchString(s) }

func (c *checker) meta() {
	m := c.r.Meta
	switch {
	case m.Name == "":
		c.errorf("metadata.name", "name is required")
	case c.r.Kind == KindNamespace || c.r.Kind == KindGateway:
		if !IsDNS1123Label(m.Name) {
			c.errorf("metadata.name", "invalid name %q: must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)", m.Name)
		}
	case !IsDNS1123Subdomain(m.Name):
		c.errorf("metadata.name", "invalid name %q: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')", m.Name)
	}
	if m.Namespace != "" && !IsDNS1123Label(m.Namespace) {
		c.errorf("metadata.namespace", "invalid namespace %q: must be a DNS-1123 label", m.Namespace)
	}
	for k := range m.Labels {
		if k == "" {
			c.errorf("metadata.labels", "empty label key")
		}
	}
}

// selector checks a workload selector (Istio: no empty keys, no wildcards).
func (c *checker) selector(path string, sel *typev1beta1.WorkloadSelector) {
	if sel == nil {
		return
	}
	for k, v := range sel.GetMatchLabels() {
		p := path + ".matchLabels." + k
		if k == "" {
			c.errorf(path+".matchLabels", "empty key is not supported in selector")
		}
		if strings.Contains(k, "*") || strings.Contains(v, "*") {
			c.errorf(p, "wildcard is not supported in selector: %q", k+"="+v)
		}
	}
}

type targetRefs interface {
	GetSelector() *typev1beta1.WorkloadSelector
	GetTargetRef() *typev1beta1.PolicyTargetReference
	GetTargetRefs() []*typev1beta1.PolicyTargetReference
}

// scope checks selector, targetRef and targetRefs of a policy.
func (c *checker) scope(s targetRefs) {
	n := 0
	if s.GetSelector() != nil {
		n++
	}
	if s.GetTargetRef() != nil {
		n++
	}
	if len(s.GetTargetRefs()) > 0 {
		n++
	}
	if n > 1 {
		path := "spec.targetRefs"
		if s.GetTargetRef() != nil {
			path = "spec.targetRef"
		}
		c.errorf(path, "only one of selector, targetRef or targetRefs can be set")
	}
	c.selector("spec.selector", s.GetSelector())
	if r := s.GetTargetRef(); r != nil {
		c.targetRef("spec.targetRef", r)
	}
	for i, r := range s.GetTargetRefs() {
		c.targetRef(fmt.Sprintf("spec.targetRefs[%d]", i), r)
	}
}

func (c *checker) targetRef(path string, r *typev1beta1.PolicyTargetReference) {
	if r.GetName() == "" {
		c.errorf(path+".name", "targetRef name must be set")
	}
	if r.GetNamespace() != "" {
		c.errorf(path+".namespace", "targetRef namespace must not be set; cross namespace referencing is not supported")
	}
	group := r.GetGroup()
	ok := (group == "" || group == "core") && r.GetKind() == "Service" ||
		group == "networking.istio.io" && r.GetKind() == "ServiceEntry" ||
		group == "gateway.networking.k8s.io" && r.GetKind() == "Gateway"
	if !ok {
		c.errorf(path+".kind", "targetRef must be to a Service, a networking.istio.io ServiceEntry or a gateway.networking.k8s.io Gateway, not %s/%s", group, r.GetKind())
	}
}

// port checks a port number is in 1..65535.
func (c *checker) port(path string, p uint32) {
	if p < 1 || p > 65535 {
		c.errorf(path, "port number %d must be in the range 1..65535", p)
	}
}

// portString checks a port written as a string.
func (c *checker) portString(path, p string) {
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		c.errorf(path, "bad port %q: must be a number in the range 1..65535", p)
	}
}

// ipOrCIDR checks an IP address or CIDR range.
func (c *checker) ipOrCIDR(path, v string) {
	if strings.Contains(v, "/") {
		if _, err := netip.ParsePrefix(v); err != nil {
			c.errorf(path, "bad CIDR range %q", v)
		}
		return
	}
	if _, err := netip.ParseAddr(v); err != nil {
		c.errorf(path, "bad IP address %q", v)
	}
}

// nonEmpty reports empty strings in a list.
func (c *checker) nonEmpty(path string, vs []string) {
	for i, v := range vs {
		if v == "" {
			c.errorf(fmt.Sprintf("%s[%d]", path, i), "empty value not allowed")
		}
	}
}

// enum checks that an enum value is one the API defines (protojson accepts
// any number for an open proto3 enum).
func (c *checker) enum(path string, v int32, names map[int32]string) {
	if _, ok := names[v]; !ok {
		c.errorf(path, "invalid value %d", v)
	}
}

// validPortName reports whether s is a valid port name (DNS-1123 label).
func validPortName(s string) bool { return IsDNS1123Label(s) }

// knownProtocols are the port protocols Istio accepts (case-insensitive).
var knownProtocols = map[string]bool{
	"HTTP": true, "HTTPS": true, "HTTP2": true, "HTTP_PROXY": true, "GRPC": true, "GRPC-WEB": true,
	"TCP": true, "TLS": true, "MONGO": true, "REDIS": true, "MYSQL": true, "UDP": true,
}

// ValidProtocol reports whether p is a protocol Istio knows (case-insensitive).
func ValidProtocol(p string) bool { return knownProtocols[strings.ToUpper(p)] }
