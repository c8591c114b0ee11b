package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"palisade.dev/palisade/internal/extauthz"
	"palisade.dev/palisade/internal/telemetry"
)

// authorizers keeps one pooled ext_authz client per provider, reused
// across config versions while the provider and its address stay the same.
type authorizers struct {
	mu      sync.Mutex
	clients map[string]*authorizerEntry
}

type authorizerEntry struct {
	spec   *meshv1alpha1.MeshConfig_ExtensionProvider
	addr   string
	client *extauthz.Client
}

func (a *authorizers) get(p *Proxy, cfg *Compiled, name string) (*extauthz.Client, error) {
	var spec *meshv1alpha1.MeshConfig_ExtensionProvider
	for _, ep := range cfg.Mesh.GetExtensionProviders() {
		if ep.GetName() == name {
			spec = ep
		}
	}
	if spec == nil {
		return nil, fmt.Errorf("proxy: extension provider %q is not in the mesh config", name)
	}
	service, port := providerTarget(spec)
	addr := joinHostPort(service, port)
	if u := cfg.Lookup(addr, port); u != nil && len(u.Endpoints) > 0 {
		addr = u.Endpoints[0].Addr
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.clients[name]; ok && e.addr == addr && proto.Equal(e.spec, spec) {
		return e.client, nil
	}
	c, err := extauthz.New(extauthz.Provider{Name: name, Spec: spec, Address: addr}, extauthz.WithLogger(p.log))
	if err != nil {
		return nil, err
	}
	if old, ok := a.clients[name]; ok {
		old.client.Close()
	}
	if a.clients == nil {
		a.clients = map[string]*authorizerEntry{}
	}
	a.clients[name] = &authorizerEntry{spec: spec, addr: addr, client: c}
	return c, nil
}

func (a *authorizers) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.clients {
		e.client.Close()
	}
	a.clients = nil
}

func providerTarget(ep *meshv1alpha1.MeshConfig_ExtensionProvider) (string, uint32) {
	if g := ep.GetEnvoyExtAuthzGrpc(); g != nil {
		return g.GetService(), g.GetPort()
	}
	if h := ep.GetEnvoyExtAuthzHttp(); h != nil {
		return h.GetService(), h.GetPort()
	}
	return "", 0
}

// checkCustom asks the CUSTOM policy's provider about the request. On
// deny it writes the authorizer's answer and returns false; on allow it
// applies the authorizer's header mutations to the request.
func (p *Proxy) checkCustom(w http.ResponseWriter, r *http.Request, cfg *Compiled, provider string, rec *Record) bool {
	client, err := p.authz.get(p, cfg, provider)
	if err != nil {
		p.log.Error("CUSTOM authorization unavailable, denying", "provider", provider, "err", err)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, denyBody) //nolint:errcheck
		return false
	}
	ci := connInfoOf(r)
	in := &extauthz.CheckInput{
		SourceAddress:        addrPort(ci.remoteStr),
		SourcePrincipal:      rec.SourcePrincipal,
		DestinationPrincipal: rec.DestinationPrincipal,
		RequestTime:          rec.Start,
		RequestID:            r.Header.Get("X-Request-Id"),
		Method:               r.Method,
		Path:                 r.URL.RequestURI(),
		Host:                 r.Host,
		Scheme:               "http",
		Protocol:             extauthz.ProtocolName(r.ProtoMajor, r.ProtoMinor),
		Headers:              r.Header,
		Size:                 r.ContentLength,
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(interface{ String() string }); ok {
		in.DestinationAddress = addrPort(a.String())
	}
	if ci.mtls {
		in.Scheme = "https"
	}
	if limit, include := client.BodyLimit(); include && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return false
		}
		in.Body = body
		r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	}
	res, err := client.Check(r.Context(), in)
	if err != nil {
		p.log.Error("ext_authz check failed", "provider", provider, "err", err)
		w.WriteHeader(http.StatusForbidden)
		return false
	}
	if !res.Allowed {
		if res.Reason == extauthz.ReasonBodyTooBig {
			p.tel.exceeded(telemetry.LimitAuthzBody)
		}
		p.log.Info("request denied by ext_authz", "provider", provider, "reason", res.Reason, "err", res.Err, "path", r.URL.Path, "source", rec.SourcePrincipal)
		for k, vs := range res.Headers {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		status := res.Status
		if status == 0 {
			status = http.StatusForbidden
		}
		w.WriteHeader(status)
		w.Write(res.Body) //nolint:errcheck
		return false
	}
	res.ApplyRequest(r.Header, r.URL)
	res.ApplyResponse(w.Header())
	return true
}

func addrPort(s string) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(s)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

type readCloser struct {
	io.Reader
	io.Closer
}
