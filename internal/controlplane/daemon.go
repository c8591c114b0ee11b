package controlplane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/identity"
)

// Daemon is a running control plane: the config store, the CA and the
// push server on one gRPC listener (mTLS, the CA's own identity), and the
// admin API on another.
type Daemon struct {
	Push *Server
	// CA is the mesh's own CA; nil when an external CA signs (Signer).
	CA     *ca.Authority
	Signer ca.Signer
	Tokens *ca.JoinTokens
	Source config.Provider

	log      *slog.Logger
	grpcLn   net.Listener
	adminLn  net.Listener
	grpc     *grpc.Server
	admin    *http.Server
	priv     *http.Server
	trustDom spiffeid.TrustDomain
	ui       atomic.Pointer[http.Handler]
}

// DaemonOptions configure a control plane.
type DaemonOptions struct {
	ConfigDir string // watched directory of YAML, when Source is nil
	// Source, when set, is the config provider instead of ConfigDir (the
	// Kubernetes API); the caller runs it, StartDaemon awaits its first
	// snapshot.
	Source    config.Provider
	Authority *ca.Authority // the mesh CA, or nil with Signer
	// Signer, when Authority is nil, is an external CA (e.g. CFSSL); roots
	// are then rotated at that CA, not here.
	Signer      ca.Signer
	GRPCListen  string // proxies and the CA API, e.g. 127.0.0.1:15012
	AdminListen string // admin API, e.g. 127.0.0.1:15014
	// GRPCListener, when set, is served instead of listening on
	// GRPCListen (a listener made in another network namespace).
	GRPCListener net.Listener
	// PrivilegedSocket is the unix socket (made 0600) for join tokens and
	// root rotation; "" serves neither.
	PrivilegedSocket string
	Registry         Registry // default ConfigRegistry
	// Authenticators are tried on CreateCertificate after join tokens
	// and before client certificates (a service-account token reviewer).
	Authenticators []ca.Authenticator
	// ExactCSRIdentity refuses a CSR for another identity than the
	// caller proved (Kubernetes mode, as istiod).
	ExactCSRIdentity bool
	// ServiceVIPRange is where services without an address get a
	// virtual IP (AssignVIPs); zero means DefaultVIPRange.
	ServiceVIPRange netip.Prefix
	Log             *slog.Logger
}

// StartDaemon loads the config, binds both listeners and starts serving;
// it returns once the control plane is reachable. The first config load
// must succeed: a control plane never starts on a broken config.
func StartDaemon(ctx context.Context, o DaemonOptions) (*Daemon, error) {
	src := o.Source
	var snap *config.Snapshot
	if src == nil {
		var err error
		if snap, err = config.Load(o.ConfigDir); err != nil {
			return nil, err
		}
		src = config.NewStore(o.ConfigDir, o.Log)
	} else {
		var err error
		if snap, err = firstSnapshot(ctx, src); err != nil {
			return nil, err
		}
	}
	td, err := spiffeid.TrustDomainFromString(snap.Mesh.GetTrustDomain())
	if err != nil {
		return nil, fmt.Errorf("controlplane: %s: trustDomain: %w", snap.MeshFile, err)
	}
	signer := o.Signer
	if o.Authority != nil {
		signer = o.Authority
	}
	if signer == nil {
		return nil, errors.New("controlplane: no CA: an Authority or a Signer is required")
	}
	if signer.Bundle().TrustDomain() != td {
		return nil, fmt.Errorf("controlplane: the CA is for trust domain %q but the mesh config says %q", signer.Bundle().TrustDomain().Name(), td.Name())
	}
	if o.Registry == nil {
		o.Registry = ConfigRegistry{}
	}
	d := &Daemon{CA: o.Authority, Signer: signer, Tokens: ca.NewJoinTokens(td, nil), log: o.Log, trustDom: td}
	d.Push = NewServer(o.Log, o.Registry, func(chain []*x509.Certificate) (spiffeid.ID, error) {
		return identity.VerifyChain(d.Signer.Bundle(), chain, time.Now())
	})
	if o.ServiceVIPRange.IsValid() {
		if err := d.Push.SetVIPRange(o.ServiceVIPRange); err != nil {
			return nil, err
		}
	}
	if err := d.Push.SetBundle(d.Signer.Bundle().MarshalPEM()); err != nil {
		return nil, err
	}
	if err := d.Push.SetSnapshot(snap); err != nil {
		return nil, err
	}

	chain := ca.Chain{d.Tokens}
	chain = append(chain, o.Authenticators...)
	chain = append(chain, ca.CertificateAuthenticator{Bundle: d.Signer.Bundle})
	caServer, err := ca.NewServer(d.Signer, chain, o.Log)
	if err != nil {
		return nil, err
	}
	if o.ExactCSRIdentity {
		caServer.RefuseOtherIdentity()
	}
	serving := ca.NewServingCertificate(d.Signer, identity.ControlPlaneID(td), 0, nil)
	d.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(ca.ServerTLSConfig(serving))),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	caServer.Register(d.grpc)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(d.grpc, d.Push)

	if d.grpcLn = o.GRPCListener; d.grpcLn == nil {
		if d.grpcLn, err = net.Listen("tcp", o.GRPCListen); err != nil {
			return nil, fmt.Errorf("controlplane: listen %s: %w", o.GRPCListen, err)
		}
	}
	if d.adminLn, err = net.Listen("tcp", o.AdminListen); err != nil {
		d.grpcLn.Close()
		return nil, fmt.Errorf("controlplane: admin listen %s: %w", o.AdminListen, err)
	}
	d.admin = &http.Server{Handler: d.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	if o.PrivilegedSocket != "" {
		if err := d.servePrivileged(o.PrivilegedSocket); err != nil {
			d.grpcLn.Close()
			d.adminLn.Close()
			return nil, err
		}
	}
	go d.grpc.Serve(d.grpcLn)   //nolint:errcheck // ends with Stop
	go d.admin.Serve(d.adminLn) //nolint:errcheck // ends with Close

	d.Source = src
	if o.Source == nil {
		go func() {
			if err := src.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				o.Log.Error("config watch stopped", "err", err)
			}
		}()
	}
	go d.follow(ctx)
	return d, nil
}

// firstSnapshot waits for src's first snapshot.
func firstSnapshot(ctx context.Context, src config.Provider) (*config.Snapshot, error) {
	snaps, stop := src.Subscribe()
	defer stop()
	select {
	case s := <-snaps:
		return s, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("controlplane: config source: %w", ctx.Err())
	}
}

// follow pushes every new config snapshot and trust bundle.
func (d *Daemon) follow(ctx context.Context) {
	snaps, stop := d.Source.Subscribe()
	defer stop()
	var bundles <-chan *identity.Bundle
	if d.CA != nil {
		var cancel func()
		bundles, cancel = d.CA.Subscribe()
		defer cancel()
		go d.CA.Run(ctx, time.Minute) //nolint:errcheck
	} else if s, ok := d.Signer.(BundleSubscriber); ok {
		var cancel func()
		bundles, cancel = s.Subscribe()
		defer cancel()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-snaps:
			d.log.Info("config changed, pushing", "version", s.Version, "resources", len(s.Resources))
			if err := d.Push.SetSnapshot(s); err != nil {
				d.log.Error("config refused, the last good one stays in force", "version", s.Version, "err", err)
			}
		case b := <-bundles:
			d.log.Info("trust bundle changed, pushing", "roots", b.Len())
			if err := d.Push.SetBundle(b.MarshalPEM()); err != nil {
				d.log.Error("trust bundle refused, the last good one stays in force", "err", err)
			}
		}
	}
}

// BundleSubscriber is an external Signer whose roots can change (the
// cert-manager signer follows its issuer's CA); each new bundle is pushed.
type BundleSubscriber interface {
	Subscribe() (updates <-chan *identity.Bundle, cancel func())
}

// GRPCAddr and AdminAddr are the bound addresses.
func (d *Daemon) GRPCAddr() string  { return d.grpcLn.Addr().String() }
func (d *Daemon) AdminAddr() string { return d.adminLn.Addr().String() }

// TrustDomain is the mesh's trust domain.
func (d *Daemon) TrustDomain() spiffeid.TrustDomain { return d.trustDom }

func (d *Daemon) servePrivileged(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("controlplane: privileged socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("controlplane: privileged socket: %w", err)
	}
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("controlplane: privileged socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("controlplane: privileged socket: %w", err)
	}
	d.priv = &http.Server{Handler: d.privilegedHandler(), ReadHeaderTimeout: 10 * time.Second}
	go d.priv.Serve(ln) //nolint:errcheck // ends with Close
	return nil
}

// Stop ends serving.
func (d *Daemon) Stop() {
	d.admin.Close()
	if d.priv != nil {
		d.priv.Close()
	}
	done := make(chan struct{})
	go func() { d.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		d.grpc.Stop()
	}
}
