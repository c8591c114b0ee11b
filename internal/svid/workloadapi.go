package svid

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// WorkloadAPI serves the SPIFFE Workload API (X.509 parts) from an Agent:
// the app beside the proxy reads its SVID and trust bundle over a unix
// socket and gets a new message at each rotation or bundle change.
type WorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	agent *Agent
	log   *slog.Logger
}

// NewWorkloadAPI serves agent's certificate; logger may be nil.
func NewWorkloadAPI(agent *Agent, logger *slog.Logger) *WorkloadAPI {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &WorkloadAPI{agent: agent, log: logger}
}

// Register adds the service to a gRPC server.
func (w *WorkloadAPI) Register(g grpc.ServiceRegistrar) {
	workload.RegisterSpiffeWorkloadAPIServer(g, w)
}

// Serve listens on the unix socket at path (replacing a stale one) until ctx
// ends. The socket is made 0660: access is by file permission.
func (w *WorkloadAPI) Serve(ctx context.Context, path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("svid: workload api: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("svid: workload api: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("svid: workload api: %w", err)
	}
	g := grpc.NewServer()
	w.Register(g)
	go func() {
		<-ctx.Done()
		g.Stop()
	}()
	if err := g.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("svid: workload api: %w", err)
	}
	return nil
}

// checkHeader enforces the spec's "workload.spiffe.io: true" request header.
func checkHeader(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

// FetchX509SVID streams the SVID, its key and the bundle, again after each
// change.
func (w *WorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	ctx := stream.Context()
	if err := checkHeader(ctx); err != nil {
		return err
	}
	changes, cancel := w.agent.Subscribe()
	defer cancel()
	select {
	case <-w.agent.Ready():
	case <-ctx.Done():
		return nil
	}
	for {
		resp, err := w.x509Response()
		if err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
	}
}

func (w *WorkloadAPI) x509Response() (*workload.X509SVIDResponse, error) {
	s, err := w.agent.GetX509SVID()
	if err != nil {
		return nil, err
	}
	key, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("svid: workload api: key: %w", err)
	}
	return &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId:    s.ID.String(),
		X509Svid:    concatDER(s.Certificates),
		X509SvidKey: key,
		Bundle:      concatDER(w.agent.Bundle().Roots()),
	}}}, nil
}

// FetchX509Bundles streams the trust bundle, again after each change.
func (w *WorkloadAPI) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	ctx := stream.Context()
	if err := checkHeader(ctx); err != nil {
		return err
	}
	changes, cancel := w.agent.Subscribe()
	defer cancel()
	var last []byte
	for {
		b := w.agent.Bundle()
		if der := concatDER(b.Roots()); string(der) != string(last) {
			last = der
			if err := stream.Send(&workload.X509BundlesResponse{Bundles: map[string][]byte{b.TrustDomain().IDString(): der}}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
	}
}

func concatDER(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}
