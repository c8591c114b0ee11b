package xds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Handler applies pushed config. Apply gets one type's changes; an error
// NACKs them, and the handler must then keep what it had.
type Handler interface {
	Apply(typeURL string, upserts []*Resource, removed []string) error
}

// Client subscribes a proxy to its config and keeps the subscription up,
// reconnecting with capped exponential backoff.
type Client struct {
	Conn    grpc.ClientConnInterface
	Node    *corev3.Node
	Handler Handler
	Log     *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnects
	// (defaults 200ms and 5s: a control plane that comes back is found within
	// seconds; jitter spreads the proxies out).
	MinBackoff, MaxBackoff time.Duration
	// OnConnected, if set, is told when a stream comes up or goes down.
	OnConnected func(bool)

	mu    sync.Mutex
	known map[string]map[string]string // type → name → applied version
}

// Run keeps the subscription until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB == 0 {
		minB = 200 * time.Millisecond
	}
	if maxB == 0 {
		maxB = 5 * time.Second
	}
	backoff := minB
	for {
		start := time.Now()
		err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if c.OnConnected != nil {
			c.OnConnected(false)
		}
		if time.Since(start) > 30*time.Second {
			backoff = minB
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		c.Log.Warn("config stream down, reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxB)
	}
}

func (c *Client) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(c.Conn)
	st, err := ads.DeltaAggregatedResources(ctx, grpc.WaitForReady(false))
	if err != nil {
		return fmt.Errorf("xds: open stream: %w", err)
	}
	for i, t := range AllTypes {
		req := &discoveryv3.DeltaDiscoveryRequest{
			TypeUrl:                 t,
			InitialResourceVersions: c.knownOf(t),
		}
		if i == 0 {
			req.Node = c.Node
		}
		if err := st.Send(req); err != nil {
			return fmt.Errorf("xds: subscribe: %w", err)
		}
	}
	connected := false
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("xds: stream closed by server")
			}
			return fmt.Errorf("xds: receive: %w", err)
		}
		if !connected {
			connected = true
			if c.OnConnected != nil {
				c.OnConnected(true)
			}
		}
		ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		ups := make([]*Resource, 0, len(resp.GetResources()))
		for _, r := range resp.GetResources() {
			ups = append(ups, &Resource{Name: r.GetName(), Version: r.GetVersion(), Any: r.GetResource()})
		}
		if err := c.Handler.Apply(resp.GetTypeUrl(), ups, resp.GetRemovedResources()); err != nil {
			c.Log.Error("config rejected, keeping last good", "type", resp.GetTypeUrl(), "err", err)
			ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		} else {
			c.remember(resp.GetTypeUrl(), ups, resp.GetRemovedResources())
		}
		if err := st.Send(ack); err != nil {
			return fmt.Errorf("xds: ack: %w", err)
		}
	}
}

func (c *Client) knownOf(t string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for k, v := range c.known[t] {
		out[k] = v
	}
	return out
}

func (c *Client) remember(t string, ups []*Resource, removed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil {
		c.known = map[string]map[string]string{}
	}
	m := c.known[t]
	if m == nil {
		m = map[string]string{}
		c.known[t] = m
	}
	for _, r := range ups {
		m[r.Name] = r.Version
	}
	for _, n := range removed {
		delete(m, n)
	}
}
