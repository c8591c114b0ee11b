package dnsproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultListen is where Istio's sidecar serves DNS.
const DefaultListen = "127.0.0.1:15053"

// TTL is the lifetime of a mesh answer, Istio's.
const TTL = 30

// Names is the table of mesh names: addresses of a lower-case name
// without its trailing dot, and whether the mesh knows the name.
type Names interface {
	LookupHost(name string) ([]netip.Addr, bool)
}

// Config configures a Server.
type Config struct {
	// Listen is the UDP and TCP address, DefaultListen when empty.
	Listen string
	// Upstreams are the resolvers (host:port) other names go to, tried
	// in order. None: every other name gets SERVFAIL.
	Upstreams []string
	// Search are the stub resolver's search domains, as in
	// /etc/resolv.conf, lower case, without trailing dots.
	Search []string
	// Names returns the table in force; nil, or a nil table, knows no
	// names (the config has not arrived yet).
	Names func() Names
	// Timeout bounds one upstream exchange (default 2s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Server is a running DNS proxy.
type Server struct {
	cfg  Config
	udp  *dns.Server
	tcp  *dns.Server
	addr string
	wg   sync.WaitGroup
}

// Start binds cfg.Listen on UDP and TCP (the same port) and serves
// until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	for _, u := range cfg.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return nil, fmt.Errorf("dnsproxy: upstream %q: %w", u, err)
		}
	}
	pc, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("dnsproxy: listen udp: %w", err)
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dnsproxy: listen tcp: %w", err)
	}
	for _, u := range cfg.Upstreams {
		if u == addr {
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("dnsproxy: upstream %s is the proxy itself", u)
		}
	}
	s := &Server{cfg: cfg, addr: addr}
	var started sync.WaitGroup
	started.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Net: "udp", Handler: dns.HandlerFunc(s.serve("udp")), NotifyStartedFunc: started.Done}
	s.tcp = &dns.Server{Listener: ln, Net: "tcp", Handler: dns.HandlerFunc(s.serve("tcp")), NotifyStartedFunc: started.Done}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func(srv *dns.Server) {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				cfg.Log.Warn("DNS proxy stopped", "net", srv.Net, "err", err)
			}
		}(srv)
	}
	started.Wait()
	return s, nil
}

// Addr returns the bound address, the same for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Close stops both listeners.
func (s *Server) Close() error {
	err := errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	s.wg.Wait()
	return err
}

func (s *Server) serve(network string) func(dns.ResponseWriter, *dns.Msg) {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		resp := s.answer(req)
		if resp == nil {
			resp = s.forward(network, req)
		}
		if network == "udp" {
			resp.Truncate(udpSize(req))
		}
		if err := w.WriteMsg(resp); err != nil {
			s.cfg.Log.Debug("DNS answer not sent", "err", err)
		}
	}
}

// answer answers req from the mesh's names, or returns nil when the
// query is not for a mesh name (or not A/AAAA), to be forwarded.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		return nil
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET || (q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA) {
		return nil
	}
	var names Names
	if s.cfg.Names != nil {
		names = s.cfg.Names()
	}
	if names == nil {
		return nil
	}
	qname := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	host, ips, ok := qname, []netip.Addr(nil), false
	if ips, ok = names.LookupHost(host); !ok {
		host, ips, ok = s.searchExpanded(names, qname)
	}
	if !ok {
		return nil
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	owner := q.Name
	if host != qname {
		// A search domain was appended to a mesh name: answer for the
		// name the stub resolver asked, through a CNAME to the mesh name.
		target := dns.Fqdn(host)
		resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: header(q.Name, dns.TypeCNAME), Target: target})
		owner = target
	}
	for _, ip := range ips {
		switch {
		case q.Qtype == dns.TypeA && ip.Is4():
			resp.Answer = append(resp.Answer, &dns.A{Hdr: header(owner, dns.TypeA), A: ip.AsSlice()})
		case q.Qtype == dns.TypeAAAA && ip.Is6() && !ip.Is4In6():
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: header(owner, dns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	return resp
}

// searchExpanded finds the mesh name a stub resolver made by appending
// one of its search domains.
func (s *Server) searchExpanded(names Names, qname string) (string, []netip.Addr, bool) {
	for _, sd := range s.cfg.Search {
		if base, ok := strings.CutSuffix(qname, "."+sd); ok && base != "" {
			if ips, ok := names.LookupHost(base); ok {
				return base, ips, true
			}
		}
	}
	return "", nil, false
}

func header(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

// forward sends req to the upstreams in order over the network it came
// by, and returns the first answer, or SERVFAIL.
func (s *Server) forward(network string, req *dns.Msg) *dns.Msg {
	c := &dns.Client{Net: network, Timeout: s.cfg.Timeout}
	if network == "udp" {
		c.UDPSize = dns.MaxMsgSize
	}
	for _, u := range s.cfg.Upstreams {
		resp, _, err := c.Exchange(req, u)
		if err == nil && resp != nil {
			resp.Id = req.Id
			return resp
		}
		s.cfg.Log.Debug("DNS upstream failed", "upstream", u, "err", err)
	}
	resp := new(dns.Msg)
	resp.SetRcode(req, dns.RcodeServerFailure)
	return resp
}

// udpSize is the largest UDP answer the client takes: its EDNS0 size,
// else 512 bytes.
func udpSize(req *dns.Msg) int {
	if o := req.IsEdns0(); o != nil && o.UDPSize() > dns.MinMsgSize {
		return int(o.UDPSize())
	}
	return dns.MinMsgSize
}

// ReadResolvConf reads the nameservers (as host:port) and search domains
// of a resolv.conf file.
func ReadResolvConf(path string) (servers, search []string, err error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsproxy: %s: %w", path, err)
	}
	for _, s := range cc.Servers {
		servers = append(servers, net.JoinHostPort(s, cc.Port))
	}
	for _, d := range cc.Search {
		search = append(search, strings.ToLower(strings.TrimSuffix(d, ".")))
	}
	return servers, search, nil
}
