package extauthz

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// DefaultTimeout is how long a Check waits for the authorizer when the
// provider sets no timeout (Istio's default: 600s).
const DefaultTimeout = 600 * time.Second

// Provider is one MeshConfig extension provider together with the address the
// caller resolved for its service (through the registry, e.g. a ServiceEntry).
type Provider struct {
	// Name is the extension provider's name, as AuthorizationPolicy's
	// provider.name refers to it.
	Name string
	// Spec is the provider as written in the mesh config. It must be an
	// envoyExtAuthzGrpc or envoyExtAuthzHttp provider.
	Spec *meshv1alpha1.MeshConfig_ExtensionProvider
	// Address is host:port of the authorizer, resolved by the caller.
	Address string
}

// kind is the ext_authz transport of a provider.
type kind int

const (
	kindGRPC kind = iota + 1
	kindHTTP
)

// bodyConfig is includeRequestBodyInCheck.
type bodyConfig struct {
	maxBytes     int
	allowPartial bool
	packAsBytes  bool
}

// config is a provider compiled once: everything a Check needs, validated.
type config struct {
	name          string
	kind          kind
	address       string
	authority     string // gRPC :authority, as Istio derives it from the cluster name
	timeout       time.Duration
	failOpen      bool
	statusOnError int
	body          *bodyConfig

	// HTTP only.
	pathPrefix        string
	requestHeaders    headerMatcher // includeRequestHeadersInCheck, plus Envoy's defaults
	additionalHeaders [][2]string   // includeAdditionalHeadersInCheck, sorted by name
	upstreamOnAllow   headerMatcher
	downstreamOnDeny  headerMatcher // empty: every header but Host
	downstreamOnAllow headerMatcher
	downstreamDenyAll bool
}

// compile validates p and gathers every problem it finds.
func compile(p Provider) (*config, error) {
	var errs []error
	c := &config{name: p.Name, address: p.Address, statusOnError: 403}
	if p.Name == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	}
	if _, _, err := net.SplitHostPort(p.Address); err != nil {
		errs = append(errs, fmt.Errorf("address %q: %w", p.Address, err))
	}
	if p.Spec == nil {
		return nil, joinProblems(p.Name, append(errs, errors.New("spec: must be set")))
	}
	switch s := p.Spec.GetProvider().(type) {
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
		g := s.EnvoyExtAuthzGrpc
		if g == nil {
			errs = append(errs, errors.New("envoyExtAuthzGrpc: must be set"))
			break
		}
		c.kind = kindGRPC
		errs = append(errs, c.common("envoyExtAuthzGrpc", g.GetService(), g.GetPort(), g.GetTimeout().AsDuration(),
			g.GetTimeout() != nil, g.GetFailOpen(), g.GetStatusOnError(), g.GetIncludeRequestBodyInCheck())...)
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
		h := s.EnvoyExtAuthzHttp
		if h == nil {
			errs = append(errs, errors.New("envoyExtAuthzHttp: must be set"))
			break
		}
		c.kind = kindHTTP
		errs = append(errs, c.common("envoyExtAuthzHttp", h.GetService(), h.GetPort(), h.GetTimeout().AsDuration(),
			h.GetTimeout() != nil, h.GetFailOpen(), h.GetStatusOnError(), h.GetIncludeRequestBodyInCheck())...)
		errs = append(errs, c.compileHTTP(h)...)
	default:
		errs = append(errs, fmt.Errorf("provider %T is not an ext_authz provider (envoyExtAuthzGrpc or envoyExtAuthzHttp)", s))
	}
	if len(errs) > 0 {
		return nil, joinProblems(p.Name, errs)
	}
	return c, nil
}

func joinProblems(name string, errs []error) error {
	for i, err := range errs {
		errs[i] = fmt.Errorf("provider %q: %w", name, err)
	}
	return errors.Join(errs...)
}

// common compiles the fields both transports share.
func (c *config) common(field, service string, port uint32, timeout time.Duration, timeoutSet, failOpen bool,
	statusOnError string, body *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody,
) []error {
	var errs []error
	if service == "" {
		errs = append(errs, fmt.Errorf("%s.service: must not be empty", field))
	}
	if port < 1 || port > 65535 {
		errs = append(errs, fmt.Errorf("%s.port: must be in [1, 65535], got %d", field, port))
	}
	// The cluster Istio builds is outbound|port||host; '|' is not valid in an
	// authority, so Istio replaces it with "_.".
	host := service
	if i := strings.LastIndexByte(service, '/'); i >= 0 {
		host = service[i+1:]
	}
	c.authority = fmt.Sprintf("outbound_.%d_._.%s", port, host)

	c.timeout = DefaultTimeout
	if timeoutSet {
		if timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: must not be negative, got %s", field, timeout))
		}
		c.timeout = timeout // 0 means no deadline
	}
	c.failOpen = failOpen
	if statusOnError != "" {
		code, err := strconv.ParseInt(statusOnError, 10, 32)
		_, known := typev3.StatusCode_name[int32(code)]
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s.statusOnError %q: not a number", field, statusOnError))
		case !known:
			errs = append(errs, fmt.Errorf("%s.statusOnError %q: unsupported HTTP status", field, statusOnError))
		default:
			c.statusOnError = int(code)
		}
	}
	if body != nil {
		if body.GetMaxRequestBytes() == 0 {
			errs = append(errs, fmt.Errorf("%s.includeRequestBodyInCheck.maxRequestBytes: must be greater than 0", field))
		}
		c.body = &bodyConfig{
			maxBytes:     int(body.GetMaxRequestBytes()),
			allowPartial: body.GetAllowPartialMessage(),
			packAsBytes:  body.GetPackAsBytes(),
		}
	}
	return errs
}

// compileHTTP compiles the envoyExtAuthzHttp-only fields.
func (c *config) compileHTTP(h *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider) []error {
	var errs []error
	if p := h.GetPathPrefix(); p != "" && !strings.HasPrefix(p, "/") {
		errs = append(errs, fmt.Errorf("envoyExtAuthzHttp.pathPrefix: must begin with '/', got %q", p))
	}
	c.pathPrefix = h.GetPathPrefix()

	include := h.GetIncludeRequestHeadersInCheck()
	if len(include) == 0 {
		//lint:ignore SA1019 the deprecated field is honoured only when the new one is unset, as Istio does
		include = h.GetIncludeHeadersInCheck()
	}
	// Envoy always sends Authorization, Method, Path and Host to an HTTP
	// authorizer, whatever the list says.
	c.requestHeaders = append(newHeaderMatcher(include), exactNames("authorization", ":method", ":path", ":authority")...)

	names := make([]string, 0, len(h.GetIncludeAdditionalHeadersInCheck()))
	for k := range h.GetIncludeAdditionalHeadersInCheck() {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		c.additionalHeaders = append(c.additionalHeaders, [2]string{k, h.GetIncludeAdditionalHeadersInCheck()[k]})
	}

	c.upstreamOnAllow = newHeaderMatcher(h.GetHeadersToUpstreamOnAllow())
	c.downstreamOnAllow = newHeaderMatcher(h.GetHeadersToDownstreamOnAllow())
	if deny := h.GetHeadersToDownstreamOnDeny(); len(deny) == 0 {
		c.downstreamDenyAll = true
	} else {
		// When the list is set, Envoy adds these to it.
		c.downstreamOnDeny = append(newHeaderMatcher(deny), exactNames("www-authenticate", "location")...)
	}
	return errs
}

// headerPattern is one Istio header pattern: exact, "prefix*" or "*suffix",
// matched without regard to case.
type headerPattern struct {
	value          string
	prefix, suffix bool
}

type headerMatcher []headerPattern

func newHeaderMatcher(patterns []string) headerMatcher {
	m := make(headerMatcher, 0, len(patterns))
	for _, p := range patterns {
		p = strings.ToLower(p)
		switch {
		case strings.HasPrefix(p, "*"):
			m = append(m, headerPattern{value: p[1:], suffix: true})
		case strings.HasSuffix(p, "*"):
			m = append(m, headerPattern{value: p[:len(p)-1], prefix: true})
		default:
			m = append(m, headerPattern{value: p})
		}
	}
	return m
}

func exactNames(names ...string) headerMatcher {
	m := make(headerMatcher, len(names))
	for i, n := range names {
		m[i] = headerPattern{value: n}
	}
	return m
}

// matches reports whether name (any case) matches one of the patterns.
func (m headerMatcher) matches(name string) bool {
	name = strings.ToLower(name)
	for _, p := range m {
		switch {
		case p.prefix && strings.HasPrefix(name, p.value),
			p.suffix && strings.HasSuffix(name, p.value),
			!p.prefix && !p.suffix && name == p.value:
			return true
		}
	}
	return false
}
