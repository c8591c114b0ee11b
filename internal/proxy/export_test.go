package proxy

import (
	"crypto/tls"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MeshServerTLS and MeshClientTLS expose the sidecar-to-sidecar TLS
// configs to the external tests.
func (p *Proxy) MeshServerTLS(verified *spiffeid.ID) *tls.Config {
	return p.serverTLS([]string{"http/1.1", meshALPN}, verified)
}

func (p *Proxy) MeshClientTLS(u *Upstream, addr string) *tls.Config {
	return p.istioClientTLS(u, []string{"http/1.1"}, addr)
}
