package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/telemetry"
)

// Record is one request or connection as the sidecar of Workload
// ("namespace/name") reported it.
type Record struct {
	Workload string `json:"workload"`
	telemetry.Entry
}

// ProxySource lists the connected proxies and where their admin
// listeners are; *controlplane.Server is one.
type ProxySource interface {
	Proxies() []controlplane.ProxyStatus
}

// Collector gathers every connected sidecar's records into a ring per
// workload. When a workload sends more than its ring holds between two
// reads, only the oldest records are lost, and Dropped counts them.
type Collector struct {
	src      ProxySource
	size     int
	interval time.Duration
	client   *http.Client
	log      *slog.Logger

	mu      sync.Mutex
	rings   map[string]*telemetry.Ring // workload → its records, as Entries
	cursors map[string]cursor
	dropped uint64
}

type cursor struct {
	connectedAt time.Time
	next        uint64
}

// DefaultRecordsPerWorkload is the ring size when none is given. A
// record takes about 1 KiB: 1,000 workloads keep about 1 GiB at most.
const DefaultRecordsPerWorkload = 1000

// NewCollector returns a collector keeping up to perWorkload records for
// each workload, reading every interval.
func NewCollector(src ProxySource, perWorkload int, interval time.Duration, log *slog.Logger) *Collector {
	if perWorkload <= 0 {
		perWorkload = DefaultRecordsPerWorkload
	}
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	return &Collector{src: src, size: perWorkload, interval: interval, log: log,
		client:  &http.Client{Timeout: 5 * time.Second},
		rings:   map[string]*telemetry.Ring{},
		cursors: map[string]cursor{},
	}
}

// Run collects until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.CollectOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CollectOnce reads every connected proxy once, a few at a time.
func (c *Collector) CollectOnce(ctx context.Context) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	proxies := c.src.Proxies()
	// An admin address several proxies announce (each its own loopback,
	// as pods do) is not one this process can reach for any of them.
	byAdmin := map[string]int{}
	for _, p := range proxies {
		if p.Connected {
			byAdmin[p.Admin]++
		}
	}
	for _, p := range proxies {
		if !p.Connected || p.Admin == "" || byAdmin[p.Admin] > 1 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(p controlplane.ProxyStatus) {
			defer func() { <-sem; wg.Done() }()
			if err := c.collect(ctx, p); err != nil && ctx.Err() == nil {
				c.log.Debug("dashboard: records not collected", "proxy", p.ID, "err", err)
			}
		}(p)
	}
	wg.Wait()
}

func (c *Collector) collect(ctx context.Context, p controlplane.ProxyStatus) error {
	c.mu.Lock()
	cur := c.cursors[p.ID]
	c.mu.Unlock()
	if !cur.connectedAt.Equal(p.ConnectedAt) {
		// A new connection may be a restarted sidecar, numbering from 1.
		cur = cursor{connectedAt: p.ConnectedAt}
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Admin+"/records?after="+strconv.FormatUint(cur.next, 10), nil)
		if err != nil {
			return err
		}
		resp, err := c.client.Do(req)
		if err != nil {
			return err
		}
		var b telemetry.Batch
		err = json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /records: %s", resp.Status)
		}
		if err != nil {
			return fmt.Errorf("GET /records: %w", err)
		}
		c.mu.Lock()
		r := c.rings[p.ID]
		if r == nil {
			r = telemetry.NewRing(c.size)
			c.rings[p.ID] = r
		}
		for i := range b.Entries {
			if reporter(&b.Entries[i]) == p.ID {
				r.Add(&b.Entries[i])
			}
		}
		c.dropped += b.Dropped
		more := b.Next > cur.next && len(b.Entries) > 0
		cur.next = b.Next
		c.cursors[p.ID] = cur
		c.mu.Unlock()
		if !more || len(b.Entries) < 5000 {
			return nil
		}
	}
}

// reporter is the workload whose sidecar made e, as e itself says: the
// destination of an inbound record, the source of an outbound one.
// Records of another workload than the proxy's are not kept.
func reporter(e *telemetry.Entry) string {
	if e.Direction == telemetry.Outbound {
		return e.SourceNamespace + "/" + e.SourceWorkload
	}
	return e.DestinationNamespace + "/" + e.DestinationWorkload
}

// Add stores records directly (a simulated mesh, tests).
func (c *Collector) Add(rs ...Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range rs {
		r := c.rings[rs[i].Workload]
		if r == nil {
			r = telemetry.NewRing(c.size)
			c.rings[rs[i].Workload] = r
		}
		r.Add(&rs[i].Entry)
	}
}

// Dropped is how many records sidecars overwrote before they were read.
func (c *Collector) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Each calls f with every kept record that started at or after since,
// workload by workload, without copying; f must not keep e.
func (c *Collector) Each(since time.Time, f func(workload string, e *telemetry.Entry)) {
	c.mu.Lock()
	rings := make(map[string]*telemetry.Ring, len(c.rings))
	for k, r := range c.rings {
		rings[k] = r
	}
	c.mu.Unlock()
	for k, r := range rings {
		r.Do(func(e *telemetry.Entry) {
			if !e.Start.Before(since) {
				f(k, e)
			}
		})
	}
}

// Records returns the kept records that started at or after since, of
// one workload ("" for all), oldest first.
func (c *Collector) Records(workload string, since time.Time) []Record {
	c.mu.Lock()
	rings := map[string]*telemetry.Ring{}
	for k, r := range c.rings {
		if workload == "" || k == workload {
			rings[k] = r
		}
	}
	c.mu.Unlock()
	var out []Record
	for k, r := range rings {
		r.Do(func(e *telemetry.Entry) {
			if !e.Start.Before(since) {
				out = append(out, Record{Workload: k, Entry: *e})
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
