package convert

// The output shapes, in the field order Istio's docs write them.

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	Spec       any    `yaml:"spec"`
}

type meta struct {
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace,omitempty"`
}

type selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type peerAuthn struct {
	Selector      *selector       `yaml:"selector,omitempty"`
	Mtls          *mtls           `yaml:"mtls,omitempty"`
	PortLevelMtls map[uint32]mtls `yaml:"portLevelMtls,omitempty"`
}

type mtls struct {
	Mode string `yaml:"mode"`
}

type requestAuthn struct {
	Selector *selector `yaml:"selector,omitempty"`
	JwtRules []jwtRule `yaml:"jwtRules"`
}

type jwtRule struct {
	Issuer      string       `yaml:"issuer"`
	JwksURI     string       `yaml:"jwksUri,omitempty"`
	Jwks        string       `yaml:"jwks,omitempty"`
	Audiences   []string     `yaml:"audiences,omitempty"`
	FromHeaders []fromHeader `yaml:"fromHeaders,omitempty"`
	FromParams  []string     `yaml:"fromParams,omitempty"`
}

type fromHeader struct {
	Name string `yaml:"name"`
}

type authzPolicy struct {
	Selector *selector `yaml:"selector,omitempty"`
	Action   string    `yaml:"action,omitempty"`
	Rules    []rule    `yaml:"rules,omitempty"`
}

type rule struct {
	From []from      `yaml:"from,omitempty"`
	To   []to        `yaml:"to,omitempty"`
	When []condition `yaml:"when,omitempty"`
}

type from struct {
	Source source `yaml:"source"`
}

type source struct {
	Principals           []string `yaml:"principals,omitempty"`
	NotPrincipals        []string `yaml:"notPrincipals,omitempty"`
	RequestPrincipals    []string `yaml:"requestPrincipals,omitempty"`
	NotRequestPrincipals []string `yaml:"notRequestPrincipals,omitempty"`
	Namespaces           []string `yaml:"namespaces,omitempty"`
	NotNamespaces        []string `yaml:"notNamespaces,omitempty"`
	IPBlocks             []string `yaml:"ipBlocks,omitempty"`
	NotIPBlocks          []string `yaml:"notIpBlocks,omitempty"`
}

func (s source) empty() bool {
	return len(s.Principals)+len(s.NotPrincipals)+len(s.RequestPrincipals)+len(s.NotRequestPrincipals)+
		len(s.Namespaces)+len(s.NotNamespaces)+len(s.IPBlocks)+len(s.NotIPBlocks) == 0
}

type to struct {
	Operation operation `yaml:"operation"`
}

type operation struct {
	Hosts      []string `yaml:"hosts,omitempty"`
	NotHosts   []string `yaml:"notHosts,omitempty"`
	Ports      []string `yaml:"ports,omitempty"`
	NotPorts   []string `yaml:"notPorts,omitempty"`
	Methods    []string `yaml:"methods,omitempty"`
	NotMethods []string `yaml:"notMethods,omitempty"`
	Paths      []string `yaml:"paths,omitempty"`
	NotPaths   []string `yaml:"notPaths,omitempty"`
}

func (o operation) empty() bool {
	return len(o.Hosts)+len(o.NotHosts)+len(o.Ports)+len(o.NotPorts)+len(o.Methods)+len(o.NotMethods)+len(o.Paths)+len(o.NotPaths) == 0
}

type condition struct {
	Key       string   `yaml:"key"`
	Values    []string `yaml:"values,omitempty"`
	NotValues []string `yaml:"notValues,omitempty"`
}

// emptySpec renders as `spec: {}`: an ALLOW policy that allows nothing.
type emptySpec struct{}
