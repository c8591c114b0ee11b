package inject

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// CertIssuer makes the webhooks' serving certificate; the mesh CA
// (*ca.Authority) is one.
type CertIssuer interface {
	ServingCertificate(dnsNames []string, ips []net.IP, ttl time.Duration) (*tls.Certificate, error)
}

// GetCertificate is tls.Config.GetCertificate.
type GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// servingTTL is the serving certificate's life; it is renewed at half.
const servingTTL = 24 * time.Hour

// MeshCertificate serves a certificate for dnsNames and ips from iss,
// issued now and again once half its life has passed. An error to renew
// keeps the current certificate while it is valid.
func MeshCertificate(iss CertIssuer, dnsNames []string, ips []net.IP, now func() time.Time) (GetCertificate, error) {
	var mu sync.Mutex
	cert, err := iss.ServingCertificate(dnsNames, ips, servingTTL)
	if err != nil {
		return nil, fmt.Errorf("inject: serving certificate: %w", err)
	}
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		mu.Lock()
		defer mu.Unlock()
		t := now()
		life := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore)
		if t.After(cert.Leaf.NotBefore.Add(life / 2)) {
			next, err := iss.ServingCertificate(dnsNames, ips, servingTTL)
			switch {
			case err == nil:
				cert = next
			case t.After(cert.Leaf.NotAfter):
				return nil, fmt.Errorf("inject: serving certificate expired and not renewed: %w", err)
			}
		}
		return cert, nil
	}, nil
}

// FileCertificate serves the key pair in certFile and keyFile (PEM), read
// once.
func FileCertificate(certFile, keyFile string) (GetCertificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("inject: serving certificate: %w", err)
	}
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, nil
}

// Server is the webhooks' HTTPS listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen serves h over TLS 1.2+ on addr with the certificate getCert
// returns.
func Listen(addr string, h http.Handler, getCert GetCertificate, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("inject: listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admission webhooks stopped", "err", err)
		}
	}()
	return &Server{ln: ln, srv: srv}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener.
func (s *Server) Close() error { return s.srv.Close() }

// ServeFlags say where the control plane serves the webhooks and with
// which certificate:
//
//	--webhook-listen     host:port of the HTTPS listener; empty: no webhooks
//	--webhook-cert, --webhook-key  a given key pair (PEM), else one from the mesh CA
//	--webhook-dns-names  names in the mesh CA's certificate (palisade.istio-system.svc,...)
//	--webhook-ips        IP addresses in it (127.0.0.1 for a control plane outside the cluster)
type ServeFlags struct {
	Listen, CertFile, KeyFile string
	DNSNames, IPs             string
}

// RegisterServeFlags adds the flags to fs.
func RegisterServeFlags(fs *flag.FlagSet) *ServeFlags {
	f := &ServeFlags{}
	fs.StringVar(&f.Listen, "webhook-listen", "", "admission webhooks (injection, validation): HTTPS listener host:port; empty for none")
	fs.StringVar(&f.CertFile, "webhook-cert", "", "admission webhooks: serving certificate PEM (default: one from the mesh CA)")
	fs.StringVar(&f.KeyFile, "webhook-key", "", "admission webhooks: serving key PEM, with --webhook-cert")
	fs.StringVar(&f.DNSNames, "webhook-dns-names", "palisade.istio-system.svc", "admission webhooks: comma-separated DNS names of the mesh CA's serving certificate")
	fs.StringVar(&f.IPs, "webhook-ips", "", "admission webhooks: comma-separated IP addresses of the mesh CA's serving certificate")
	return f
}

// Certificate returns the certificate source the flags ask for: the
// given files, or iss (nil when the CA cannot issue one, as with an
// external CA: then the files are required).
func (f *ServeFlags) Certificate(iss CertIssuer, now func() time.Time) (GetCertificate, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("inject: --webhook-cert and --webhook-key go together")
	}
	if f.CertFile != "" {
		return FileCertificate(f.CertFile, f.KeyFile)
	}
	if iss == nil {
		return nil, errors.New("inject: --webhook-cert and --webhook-key are required when the mesh CA cannot issue the serving certificate")
	}
	var ips []net.IP
	for _, s := range splitList(f.IPs) {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("inject: --webhook-ips: %q is not an IP address", s)
		}
		ips = append(ips, ip)
	}
	dns := splitList(f.DNSNames)
	for _, d := range dns {
		if strings.ContainsAny(d, " /:") {
			return nil, fmt.Errorf("inject: --webhook-dns-names: %q is not a DNS name", d)
		}
	}
	return MeshCertificate(iss, dns, ips, now)
}

// Start is the control plane's one call: with --webhook-listen set, it
// checks cfg, makes the serving certificate (the flags' files, or one from
// iss) and serves the webhooks until Close; without it, it returns nil.
//
//	sf := inject.RegisterServeFlags(fs)
//	ic := inject.RegisterFlags(fs)
//	...
//	srv, err := inject.Start(sf, *ic, authority, snapshotFunc, log)
//	if srv != nil { defer srv.Close() }
func Start(sf *ServeFlags, cfg Config, iss CertIssuer, snapshot SnapshotFunc, log *slog.Logger) (*Server, error) {
	if sf.Listen == "" {
		return nil, nil
	}
	hooks, err := New(cfg, snapshot, log)
	if err != nil {
		return nil, err
	}
	getCert, err := sf.Certificate(iss, time.Now)
	if err != nil {
		return nil, err
	}
	srv, err := Listen(sf.Listen, hooks.Handler(), getCert, log)
	if err != nil {
		return nil, err
	}
	log.Info("admission webhooks serving", "addr", srv.Addr(), "inject", InjectPath, "validate", ValidatePath)
	return srv, nil
}
