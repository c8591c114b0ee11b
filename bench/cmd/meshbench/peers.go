package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// pair is two proxies of one kind carrying the same two-hop mTLS path:
// a client-side proxy the load generator talks plain to, and a
// server-side proxy that terminates mTLS in front of the backend.
type pair struct {
	Name           string
	client, server *proc
	extra          []*proc
	HTTP, TCP      string // client-side entry points
	tcpPids        []int  // the processes carrying TCP, when not the HTTP pair
}

func (p *pair) pids() []int { return []int{p.client.pid(), p.server.pid()} }

func (p *pair) tcpPIDs() []int {
	if p.tcpPids != nil {
		return p.tcpPids
	}
	return p.pids()
}

func (p *pair) stop() {
	for _, x := range append([]*proc{p.client, p.server}, p.extra...) {
		x.stop()
	}
}

// startGhostunnel runs two ghostunnel pairs (one per backend port, as
// ghostunnel carries one target per listener); the HTTP pair is the one
// whose resources are measured.
func startGhostunnel(e *env, pc *peerCerts, be *backendAddrs) (*pair, error) {
	dir := filepath.Join(e.work, "ghostunnel")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pair{Name: "ghostunnel"}
	one := func(tag, target string) (client, server *proc, entry string, err error) {
		srvAddr, entry := freeAddr(), freeAddr()
		server, err = start("ghostunnel-server-"+tag, dir, nil, e.ghostunnel, "server", "--listen", srvAddr, "--target", target,
			"--cert", pc.ServerCert, "--key", pc.ServerKey, "--cacert", pc.CA, "--allow-uri", pc.ClientID, "--quiet", "all")
		if err != nil {
			return nil, nil, "", err
		}
		client, err = start("ghostunnel-client-"+tag, dir, nil, e.ghostunnel, "client", "--listen", entry, "--target", srvAddr,
			"--cert", pc.ClientCert, "--key", pc.ClientKey, "--cacert", pc.CA, "--verify-uri", pc.ServerID, "--quiet", "all")
		if err != nil {
			server.stop()
			return nil, nil, "", err
		}
		return client, server, entry, nil
	}
	var err error
	if p.client, p.server, p.HTTP, err = one("http", be.HTTP); err != nil {
		return nil, err
	}
	c2, s2, tcp, err := one("tcp", be.TCP)
	if err != nil {
		p.stop()
		return nil, err
	}
	p.extra, p.TCP, p.tcpPids = []*proc{c2, s2}, tcp, []int{c2.pid(), s2.pid()}
	return p, waitPair(p)
}

// startHAProxy runs two HAProxy processes: the client side in TCP mode
// originating mTLS, the server side terminating it (HTTP mode for the
// HTTP port, as Palisade's server sidecar parses HTTP; TCP mode for the
// raw port).
func startHAProxy(e *env, pc *peerCerts, be *backendAddrs) (*pair, error) {
	dir := filepath.Join(e.work, "haproxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pair{Name: "haproxy", HTTP: freeAddr(), TCP: freeAddr()}
	srvHTTP, srvTCP := freeAddr(), freeAddr()
	const defaults = `global
  maxconn 8000
defaults
  timeout connect 5s
  timeout client 5m
  timeout server 5m
  timeout http-keep-alive 5m
`
	server := defaults + fmt.Sprintf(`frontend mtls_http
  mode http
  bind %[1]s ssl crt %[3]s ca-file %[4]s verify required alpn http/1.1
  default_backend app_http
backend app_http
  mode http
  server app %[5]s
frontend mtls_tcp
  mode tcp
  bind %[2]s ssl crt %[3]s ca-file %[4]s verify required
  default_backend app_tcp
backend app_tcp
  mode tcp
  server app %[6]s
`, srvHTTP, srvTCP, pc.ServerPair, pc.CA, be.HTTP, be.TCP)
	client := defaults + fmt.Sprintf(`frontend plain_http
  mode tcp
  bind %[1]s
  default_backend up_http
backend up_http
  mode tcp
  server s %[3]s ssl crt %[5]s ca-file %[6]s verify required alpn http/1.1
frontend plain_tcp
  mode tcp
  bind %[2]s
  default_backend up_tcp
backend up_tcp
  mode tcp
  server s %[4]s ssl crt %[5]s ca-file %[6]s verify required
`, p.HTTP, p.TCP, srvHTTP, srvTCP, pc.ClientPair, pc.CA)
	for name, cfg := range map[string]string{"server": server, "client": client} {
		if err := os.WriteFile(filepath.Join(dir, name+".cfg"), []byte(cfg), 0o600); err != nil {
			return nil, err
		}
	}
	var err error
	if p.server, err = start("haproxy-server", dir, nil, e.haproxy, "-db", "-f", filepath.Join(dir, "server.cfg")); err != nil {
		return nil, err
	}
	if p.client, err = start("haproxy-client", dir, nil, e.haproxy, "-db", "-f", filepath.Join(dir, "client.cfg")); err != nil {
		p.server.stop()
		return nil, err
	}
	return p, waitPair(p)
}

func waitPair(p *pair) error {
	err := waitFor(15*time.Second, func() error {
		for _, x := range append([]*proc{p.client, p.server}, p.extra...) {
			if x.exited() {
				return fmt.Errorf("%s exited: %s", x.name, x.tail())
			}
		}
		if err := expect(p.HTTP, check{Path: "/", Want: 200}); err != nil {
			return err
		}
		if p.TCP == "" { // a pair that carries HTTP only
			return nil
		}
		_, err := transfer(p.TCP, 1<<10)
		return err
	})
	if err != nil {
		p.stop()
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}
