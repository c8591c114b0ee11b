package inject

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"palisade.dev/palisade/internal/config"
)

// Istio's names, kept so that users' annotations and tooling work as with
// Istio.
const (
	ProxyContainer = "istio-proxy"
	InitContainer  = "istio-init"

	AnnotationInject           = "sidecar.istio.io/inject"
	AnnotationStatus           = "sidecar.istio.io/status"
	AnnotationInterceptionMode = "sidecar.istio.io/interceptionMode"
	AnnotationRewriteProbes    = "sidecar.istio.io/rewriteAppHTTPProbers"
	AnnotationProxyImage       = "sidecar.istio.io/proxyImage"
	AnnotationProxyCPU         = "sidecar.istio.io/proxyCPU"
	AnnotationProxyMemory      = "sidecar.istio.io/proxyMemory"
	AnnotationProxyCPULimit    = "sidecar.istio.io/proxyCPULimit"
	AnnotationProxyMemoryLimit = "sidecar.istio.io/proxyMemoryLimit"
	AnnotationIncludeInbound   = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationExcludeInbound   = "traffic.sidecar.istio.io/excludeInboundPorts"
	AnnotationIncludeOutIPs    = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationExcludeOutIPs    = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	AnnotationIncludeOutPorts  = "traffic.sidecar.istio.io/includeOutboundPorts"
	AnnotationExcludeOutPorts  = "traffic.sidecar.istio.io/excludeOutboundPorts"
	AnnotationDefaultContainer = "kubectl.kubernetes.io/default-container"

	LabelInjection     = "istio-injection"
	LabelRevision      = "istio.io/rev"
	LabelTLSMode       = "security.istio.io/tlsMode"
	LabelCanonicalName = "service.istio.io/canonical-name"
	LabelCanonicalRev  = "service.istio.io/canonical-revision"

	// ProxyUID is the sidecar's uid and gid; the capture rules exclude
	// its traffic by it.
	ProxyUID = 1337
	// StatusPort serves the rewritten probes and the sidecar's readiness.
	StatusPort = 15020
	// HTTPProxyPort is the sidecar's HTTP proxy in interception mode NONE.
	HTTPProxyPort = 15080

	TokenAudience = "istio-ca"
	TokenDir      = "/var/run/secrets/tokens"
	TokenFile     = "istio-token"
	RootCertMap   = "istio-ca-root-cert"
	RootCertDir   = "/var/run/secrets/istio"
	RootCertKey   = "root-cert.pem"
	WorkloadUDS   = "/var/run/secrets/workload-spiffe-uds"
)

// Interception modes, as sidecar.istio.io/interceptionMode spells them.
const (
	ModeRedirect = "REDIRECT"
	ModeNone     = "NONE"
)

// Config is what the injector puts into every pod; its zero values are
// filled by Defaults.
type Config struct {
	Image        string // the palisade-proxy image (required)
	ControlPlane string // address sidecars dial, host:port
	TrustDomain  string
	// InterceptionMode is the default: REDIRECT writes Istio's capture
	// rules in an init container; NONE uses the sidecar's HTTP proxy.
	InterceptionMode string
	// Revision is this control plane's revision ("default" when empty):
	// pods of namespaces labelled istio.io/rev=REVISION are injected too.
	Revision         string
	RewriteProbes    bool
	ImagePullPolicy  string // Always, IfNotPresent, Never, or empty
	TokenExpiration  int64  // seconds, Istio's 43200
	IncludeIPRanges  string // Istio's global.proxy.includeIPRanges, "*"
	ExcludeIPRanges  string
	ExcludeInbound   string // added to 15020,15021,15090
	ProxyCPU         string
	ProxyMemory      string
	ProxyCPULimit    string
	ProxyMemoryLimit string
}

// Defaults returns Istio's defaults.
func Defaults() Config {
	return Config{
		ControlPlane:     "palisade.istio-system.svc:15012",
		TrustDomain:      config.DefaultTrustDomain,
		InterceptionMode: ModeRedirect,
		Revision:         "default",
		RewriteProbes:    true,
		TokenExpiration:  43200,
		IncludeIPRanges:  "*",
		ProxyCPU:         "100m",
		ProxyMemory:      "128Mi",
		ProxyCPULimit:    "2000m",
		ProxyMemoryLimit: "1024Mi",
	}
}

// RegisterFlags adds the injector's flags, all prefixed "inject-", to fs
// and returns the Config they fill; call Validate after parsing.
//
//	--inject-image              palisade-proxy image (required to inject)
//	--inject-control-plane      address sidecars dial (palisade.istio-system.svc:15012)
//	--inject-trust-domain       trust domain sidecars ask certificates in
//	--inject-interception-mode  REDIRECT (capture rules) or NONE (HTTP proxy)
//	--inject-revision           revision whose istio.io/rev label injects
//	--inject-rewrite-probes     rewrite HTTP and TCP probes to :15020
//	--inject-exclude-outbound-ip-ranges, --inject-include-outbound-ip-ranges,
//	--inject-exclude-inbound-ports: mesh-wide capture defaults
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := Defaults()
	fs.StringVar(&c.Image, "inject-image", "", "sidecar injection: the palisade-proxy image")
	fs.StringVar(&c.ControlPlane, "inject-control-plane", c.ControlPlane, "sidecar injection: control plane address the sidecars dial")
	fs.StringVar(&c.TrustDomain, "inject-trust-domain", c.TrustDomain, "sidecar injection: the mesh's trust domain")
	fs.StringVar(&c.InterceptionMode, "inject-interception-mode", c.InterceptionMode, "sidecar injection: REDIRECT (capture rules in istio-init) or NONE (the app uses the sidecar as HTTP_PROXY)")
	fs.StringVar(&c.Revision, "inject-revision", c.Revision, "sidecar injection: the revision this control plane serves (istio.io/rev)")
	fs.BoolVar(&c.RewriteProbes, "inject-rewrite-probes", c.RewriteProbes, "sidecar injection: send the kubelet's HTTP and TCP probes through the sidecar's status port")
	fs.StringVar(&c.ImagePullPolicy, "inject-image-pull-policy", "", "sidecar injection: imagePullPolicy of the injected containers")
	fs.StringVar(&c.IncludeIPRanges, "inject-include-outbound-ip-ranges", c.IncludeIPRanges, "sidecar injection: outbound ranges captured (* for all)")
	fs.StringVar(&c.ExcludeIPRanges, "inject-exclude-outbound-ip-ranges", "", "sidecar injection: outbound ranges never captured")
	fs.StringVar(&c.ExcludeInbound, "inject-exclude-inbound-ports", "", "sidecar injection: inbound ports never captured, besides 15020,15021,15090")
	return &c
}

// Validate checks c, naming each bad field.
func (c *Config) Validate() error {
	var errs []error
	if c.Image == "" {
		errs = append(errs, errors.New("inject: image is required"))
	}
	if c.ControlPlane == "" {
		errs = append(errs, errors.New("inject: control plane address is required"))
	}
	if c.TrustDomain == "" {
		errs = append(errs, errors.New("inject: trust domain is required"))
	}
	if c.InterceptionMode != ModeRedirect && c.InterceptionMode != ModeNone {
		errs = append(errs, fmt.Errorf("inject: interception mode %q: want %s or %s", c.InterceptionMode, ModeRedirect, ModeNone))
	}
	switch c.ImagePullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		errs = append(errs, fmt.Errorf("inject: image pull policy %q: want Always, IfNotPresent or Never", c.ImagePullPolicy))
	}
	if c.Revision != "" && !config.IsDNS1123Label(c.Revision) {
		errs = append(errs, fmt.Errorf("inject: revision %q: must be a DNS label", c.Revision))
	}
	if c.TokenExpiration < 600 {
		errs = append(errs, fmt.Errorf("inject: token expiration %ds: at least 600", c.TokenExpiration))
	}
	if err := cidrList(c.IncludeIPRanges, true); err != nil {
		errs = append(errs, fmt.Errorf("inject: include outbound IP ranges: %w", err))
	}
	if err := cidrList(c.ExcludeIPRanges, false); err != nil {
		errs = append(errs, fmt.Errorf("inject: exclude outbound IP ranges: %w", err))
	}
	if err := portList(c.ExcludeInbound, false); err != nil {
		errs = append(errs, fmt.Errorf("inject: exclude inbound ports: %w", err))
	}
	return errors.Join(errs...)
}

// revision is the revision name, "default" when unset.
func (c *Config) revision() string {
	if c.Revision == "" {
		return "default"
	}
	return c.Revision
}

// splitList splits a comma-separated annotation value, trimming spaces
// and dropping empty elements.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
