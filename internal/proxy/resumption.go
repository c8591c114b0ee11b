package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"slices"
	"strings"
	"sync"
)

// clientSessions bounds the session tickets a sidecar holds for its
// outbound mTLS connections.
const clientSessions = 1024

// sessions is a sidecar's TLS session resumption state, tied to its own
// certificate: the key its inbound listeners seal session tickets with,
// and the tickets its outbound connections hold. When the certificate
// rotates both are replaced, so no session made under the old
// certificate resumes: a peer's ticket no longer opens, and the tickets
// held for upstreams are dropped. A resumed handshake still runs the
// VerifyConnection of serverTLS and istioClientTLS, with the peer chain
// the session recorded: the peer's identity, the trust bundle and secure
// naming are checked again on every connection.
type sessions struct {
	mu     sync.Mutex
	cert   *tls.Certificate // the certificate the state belongs to
	keys   [][32]byte
	client tls.ClientSessionCache
}

// forCert returns the ticket keys and client session cache for cert,
// replacing them when cert is not the certificate they were made for.
func (s *sessions) forCert(cert *tls.Certificate) ([][32]byte, tls.ClientSessionCache) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != cert && (s.cert == nil || !sameLeaf(s.cert, cert)) {
		var k [32]byte
		_, _ = rand.Read(k[:]) // crypto/rand.Read never fails
		s.keys = [][32]byte{k}
		s.client = tls.NewLRUClientSessionCache(clientSessions)
	}
	s.cert = cert
	return s.keys, s.client
}

func sameLeaf(a, b *tls.Certificate) bool {
	return len(a.Certificate) > 0 && len(b.Certificate) > 0 && bytes.Equal(a.Certificate[0], b.Certificate[0])
}

// namedSessions is a client session cache partitioned by what the
// connection expects of its server (secure naming) and by endpoint, so a
// ticket is offered only to the endpoint that issued it and only where
// the same identities are acceptable.
type namedSessions struct {
	c      tls.ClientSessionCache
	prefix string
}

func newNamedSessions(c tls.ClientSessionCache, u *Upstream, trustDomain, addr string) namedSessions {
	var b strings.Builder
	if len(u.Identities) == 0 {
		b.WriteString("td=" + trustDomain)
	} else {
		ids := make([]string, len(u.Identities))
		for i, id := range u.Identities {
			ids[i] = id.String()
		}
		slices.Sort(ids)
		b.WriteString("ids=" + strings.Join(ids, ","))
	}
	b.WriteString(" addr=" + addr + " ")
	return namedSessions{c: c, prefix: b.String()}
}

func (n namedSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return n.c.Get(n.prefix + key)
}

func (n namedSessions) Put(key string, cs *tls.ClientSessionState) {
	n.c.Put(n.prefix+key, cs)
}
