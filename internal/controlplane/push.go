package controlplane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/xds"
)

// Node metadata keys a proxy sets when it subscribes.
const (
	// MetaInbound is a struct of service port → sidecar listener host:port.
	MetaInbound = "INBOUND"
	// MetaApp is a struct of service port → the app's host:port.
	MetaApp = "APP"
	// MetaAdmin is the sidecar's admin listener, host:port.
	MetaAdmin = "ADMIN"
	// MetaHTTPProxy is the sidecar's outbound HTTP proxy listener.
	MetaHTTPProxy = "HTTP_PROXY"
	// MetaGateway marks an ingress gateway; MetaLabels are its labels.
	MetaGateway = "GATEWAY"
	MetaLabels  = "LABELS"
)

// Server pushes config to proxies over delta ADS.
type Server struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer

	log      *slog.Logger
	registry Registry
	vipRange netip.Prefix // where services without an address get a VIP
	started  time.Time    // for ReconnectGrace
	// verify checks a proxy's client certificate chain against the
	// mesh's trust bundle and returns its SPIFFE ID. Nil turns identity
	// checks off, which only tests do.
	verify PeerVerifier

	mu       sync.Mutex
	snap     *config.Snapshot
	bundle   []byte
	inbound  map[WorkloadKey]map[uint32]string
	changed  chan struct{} // closed on every change, then replaced
	input    atomic.Pointer[state]
	proxies  map[string]*ProxyStatus
	nonceSeq atomic.Uint64
	pending  *time.Timer // a rebuild for announced endpoints, if one is due
}

type state struct {
	in        *Input
	gen       *generation
	workloads map[WorkloadKey]*Workload
}

// EndpointDebounce is how long the server waits after a proxy announces
// its addresses before it rebuilds the services, so that proxies
// starting together (a whole mesh coming up) cost one rebuild, not one
// each.
const EndpointDebounce = 100 * time.Millisecond

// ProxyStatus is what the control plane knows of one connected proxy.
type ProxyStatus struct {
	ID          string            `json:"id"`
	Identity    string            `json:"identity"`
	Connected   bool              `json:"connected"`
	ConnectedAt time.Time         `json:"connectedAt"`
	Acked       map[string]string `json:"acked"` // type → nonce last ACKed
	LastNack    string            `json:"lastNack,omitempty"`
	Inbound     map[uint32]string `json:"inbound,omitempty"`
	App         map[uint32]string `json:"app,omitempty"`
	Admin       string            `json:"admin,omitempty"`
	HTTPProxy   string            `json:"httpProxy,omitempty"`
}

// PeerVerifier verifies a proxy's certificate chain (leaf first) and
// returns its SPIFFE ID.
type PeerVerifier func(chain []*x509.Certificate) (spiffeid.ID, error)

// NewServer returns a push server. verify must be set outside tests: a
// proxy may then subscribe only for a workload that runs as the identity
// its client certificate proves.
// ReconnectGrace is how long after it starts the control plane holds
// its first push to a proxy that reconnects with config (its xDS
// subscription names what it holds): long enough for the proxies' 5s
// longest reconnect backoff, so that the registry, rebuilt from the
// proxies that are back, has their endpoints when it first pushes.
const ReconnectGrace = 8 * time.Second

func NewServer(log *slog.Logger, reg Registry, verify PeerVerifier) *Server {
	s := &Server{
		log: log, registry: reg, verify: verify, started: time.Now(),
		inbound:  map[WorkloadKey]map[uint32]string{},
		changed:  make(chan struct{}),
		proxies:  map[string]*ProxyStatus{},
		snap:     &config.Snapshot{Mesh: config.DefaultMesh()},
		vipRange: DefaultVIPRange,
	}
	if err := s.rebuildLocked(); err != nil {
		panic(err) // the default mesh config always encodes
	}
	return s
}

// SetVIPRange sets the range services without an address of their own
// get a virtual IP from (DefaultVIPRange unless set), and pushes the
// change. A range too small for the mesh is refused and the old one
// stays.
func (s *Server) SetVIPRange(r netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.vipRange
	s.vipRange = r
	if err := s.rebuildLocked(); err != nil {
		s.vipRange = old
		return err
	}
	return nil
}

// SetSnapshot installs a new config snapshot and pushes what changed. A
// snapshot that cannot be encoded is refused and the last one stays in
// force.
func (s *Server) SetSnapshot(snap *config.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap
	s.snap = snap
	if err := s.rebuildLocked(); err != nil {
		s.snap = old
		return err
	}
	return nil
}

// SetBundle installs a new trust bundle (PEM) and pushes it.
func (s *Server) SetBundle(pemBundle []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.bundle
	s.bundle = append([]byte(nil), pemBundle...)
	if err := s.rebuildLocked(); err != nil {
		s.bundle = old
		return err
	}
	return nil
}

// Workloads returns the current workloads with their announced inbound
// addresses.
func (s *Server) Workloads() []*Workload {
	st := s.input.Load()
	out := make([]*Workload, 0, len(st.workloads))
	for _, w := range s.registry.Workloads(st.in.Snapshot) {
		out = append(out, st.workloads[w.Key])
	}
	return out
}

// Snapshot returns the config snapshot in force.
func (s *Server) Snapshot() *config.Snapshot { return s.input.Load().in.Snapshot }

// Proxies returns a copy of every proxy's status.
func (s *Server) Proxies() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.proxies))
	for _, p := range s.proxies {
		c := *p
		c.Acked = map[string]string{}
		for k, v := range p.Acked {
			c.Acked[k] = v
		}
		out = append(out, c)
	}
	return out
}

// rebuildLocked works out the new state and wakes every stream to push
// what changed.
func (s *Server) rebuildLocked() error {
	if s.pending != nil {
		s.pending.Stop()
		s.pending = nil
	}
	ws := s.registry.Workloads(s.snap)
	byKey := make(map[WorkloadKey]*Workload, len(ws))
	for _, w := range ws {
		if in, ok := s.inbound[w.Key]; ok {
			w.Inbound = in // announced by its proxy; else the registry's
		}
		byKey[w.Key] = w
	}
	services := BuildServices(s.snap, ws)
	if sa, ok := s.registry.(ServiceAddresser); ok {
		SetServiceAddresses(services, sa.ServiceAddresses(s.snap))
	}
	if err := AssignVIPs(services, s.vipRange); err != nil {
		return err
	}
	in := &Input{Snapshot: s.snap, Services: services, Bundle: s.bundle}
	var prev *generation
	if cur := s.input.Load(); cur != nil {
		prev = cur.gen
	}
	gen, err := newGeneration(in, prev)
	if err != nil {
		return err
	}
	s.input.Store(&state{in: in, gen: gen, workloads: byKey})
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// rebuildSoonLocked schedules a rebuild within EndpointDebounce.
func (s *Server) rebuildSoonLocked() {
	if s.pending != nil {
		return
	}
	s.pending = time.AfterFunc(EndpointDebounce, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.rebuildLocked(); err != nil {
			s.log.Error("rebuild after new endpoints", "err", err)
		}
	})
}

func (s *Server) watch() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// DeltaAggregatedResources serves one proxy's subscription.
func (s *Server) DeltaAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	proxy, id, err := s.admit(ctx, first.GetNode())
	if err != nil {
		s.log.Warn("proxy refused", "node", first.GetNode().GetId(), "err", err)
		return err
	}
	st := &ProxyStatus{ID: first.GetNode().GetId(), Identity: id, Connected: true, ConnectedAt: time.Now(), Acked: map[string]string{}, App: map[uint32]string{},
		Admin:     first.GetNode().GetMetadata().GetFields()[MetaAdmin].GetStringValue(),
		HTTPProxy: first.GetNode().GetMetadata().GetFields()[MetaHTTPProxy].GetStringValue()}
	for k, v := range first.GetNode().GetMetadata().GetFields()[MetaApp].GetStructValue().GetFields() {
		if n, err := strconv.ParseUint(k, 10, 16); err == nil {
			st.App[uint32(n)] = v.GetStringValue()
		}
	}
	s.mu.Lock()
	if old, ok := s.proxies[st.ID]; ok {
		st.Inbound = old.Inbound
	}
	s.proxies[st.ID] = st
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		st.Connected = false
		s.mu.Unlock()
	}()
	s.log.Info("proxy connected", "node", st.ID, "identity", id)

	reqs := make(chan *discoveryv3.DeltaDiscoveryRequest, 16)
	recvErr := make(chan error, 1)
	reqs <- first
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()

	if len(first.GetInitialResourceVersions()) > 0 {
		// The proxy held config before this process started: the peers
		// it calls may not be back yet, and their endpoints are learnt
		// only as they reconnect. It keeps serving on what it holds
		// until they have had the time to, rather than get a config
		// without them.
		if wait := ReconnectGrace - time.Since(s.started); wait > 0 {
			s.log.Info("proxy reconnected to a control plane that just started: first push held", "node", st.ID, "for", wait.Round(time.Millisecond))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil
			case err := <-recvErr:
				return err
			}
		}
	}

	have := map[string]xds.Held{} // type → what the proxy holds
	subscribed := map[string]bool{}
	sent := map[string]bool{} // types answered at least once on this stream
	for {
		changed := s.watch()
		if err := s.push(stream, proxy, subscribed, sent, have); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-recvErr:
			return err
		case r := <-reqs:
			s.handleRequest(st, r, subscribed, have)
		case <-changed:
		}
	}
}

func (s *Server) handleRequest(st *ProxyStatus, r *discoveryv3.DeltaDiscoveryRequest, subscribed map[string]bool, have map[string]xds.Held) {
	t := r.GetTypeUrl()
	if r.GetResponseNonce() == "" {
		if !subscribed[t] {
			subscribed[t] = true
			have[t] = xds.HeldVersions(r.GetInitialResourceVersions())
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := r.GetErrorDetail(); e != nil {
		st.LastNack = fmt.Sprintf("%s: %s", t, e.GetMessage())
		s.log.Warn("proxy rejected config", "node", st.ID, "type", t, "err", e.GetMessage())
		return
	}
	st.Acked[t] = r.GetResponseNonce()
}

func (s *Server) push(stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, p func(*state) (Proxy, bool), subscribed, sent map[string]bool, have map[string]xds.Held) error {
	cur := s.input.Load()
	proxy, ok := p(cur)
	if !ok {
		return status.Error(codes.NotFound, "workload no longer in the mesh config")
	}
	set := cur.gen.set(proxy)
	for _, t := range xds.AllTypes {
		if !subscribed[t] {
			continue
		}
		d := have[t].Diff(set[t])
		if d.Empty() && sent[t] {
			continue
		}
		resp := &discoveryv3.DeltaDiscoveryResponse{
			TypeUrl:          t,
			Nonce:            strconv.FormatUint(s.nonceSeq.Add(1), 10),
			RemovedResources: d.Removed,
			Resources:        make([]*discoveryv3.Resource, 0, len(d.Upserts)),
		}
		for _, r := range d.Upserts {
			resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: r.Name, Version: r.Version, Resource: r.Any})
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		sent[t] = true
		have[t] = xds.HeldSent(set[t])
	}
	return nil
}

// admit checks who the proxy is and returns how to find its workload in
// each new state.
func (s *Server) admit(ctx context.Context, node *corev3.Node) (func(*state) (Proxy, bool), string, error) {
	if node == nil || node.GetId() == "" {
		return nil, "", status.Error(codes.InvalidArgument, "first request carries no node")
	}
	requireIdentity := s.verify != nil
	var id spiffeid.ID
	if requireIdentity {
		var err error
		if id, err = s.peerID(ctx); err != nil {
			return nil, "", status.Errorf(codes.Unauthenticated, "%v", err)
		}
	}
	meta := node.GetMetadata().GetFields()
	if meta[MetaGateway].GetBoolValue() {
		key, err := ParseWorkloadKey(node.GetId())
		if err != nil {
			return nil, "", status.Error(codes.InvalidArgument, err.Error())
		}
		if requireIdentity && pathNamespace(id) != key.Namespace {
			return nil, "", status.Errorf(codes.PermissionDenied, "identity %s may not serve gateway %s", id, key)
		}
		labels := map[string]string{}
		for k, v := range meta[MetaLabels].GetStructValue().GetFields() {
			labels[k] = v.GetStringValue()
		}
		gw := &GatewayProxy{Namespace: key.Namespace, Name: key.Name, Labels: labels}
		return func(*state) (Proxy, bool) { return Proxy{Gateway: gw}, true }, id.String(), nil
	}
	key, err := ParseWorkloadKey(node.GetId())
	if err != nil {
		return nil, "", status.Error(codes.InvalidArgument, err.Error())
	}
	w := s.input.Load().workloads[key]
	if w == nil {
		return nil, "", status.Errorf(codes.NotFound, "no workload %s in the mesh config", key)
	}
	if requireIdentity {
		want := "/ns/" + w.Key.Namespace + "/sa/" + w.ServiceAccount
		if id.Path() != want {
			return nil, "", status.Errorf(codes.PermissionDenied, "identity %s may not serve workload %s (wants %s)", id, key, want)
		}
	}
	inbound := map[uint32]string{}
	for k, v := range meta[MetaInbound].GetStructValue().GetFields() {
		n, err := strconv.ParseUint(k, 10, 16)
		if err != nil {
			return nil, "", status.Errorf(codes.InvalidArgument, "inbound port %q: %v", k, err)
		}
		inbound[uint32(n)] = v.GetStringValue()
	}
	s.mu.Lock()
	if !sameAddrs(s.inbound[key], inbound) {
		s.inbound[key] = inbound
		s.rebuildSoonLocked()
	}
	s.mu.Unlock()
	return func(st *state) (Proxy, bool) {
		w := st.workloads[key]
		return Proxy{Workload: w}, w != nil
	}, id.String(), nil
}

func (s *Server) peerID(ctx context.Context) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, errors.New("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("no client certificate")
	}
	return s.verify(info.State.PeerCertificates)
}

func pathNamespace(id spiffeid.ID) string {
	parts := strings.Split(id.Path(), "/")
	if len(parts) >= 3 && parts[1] == "ns" {
		return parts[2]
	}
	return ""
}

func sameAddrs(a, b map[uint32]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if x, ok := b[k]; !ok || x != v {
			return false
		}
	}
	return true
}
