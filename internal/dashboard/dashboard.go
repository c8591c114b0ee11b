package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/replay"
	"palisade.dev/palisade/internal/telemetry"
)

//go:embed web
var assets embed.FS

// Dashboard serves the UI and its JSON API.
type Dashboard struct {
	mesh      Mesh
	collector *Collector
	now       func() time.Time
	log       *slog.Logger
}

// Options configure a Dashboard.
type Options struct {
	// RecordsPerWorkload bounds the records kept per workload (default
	// DefaultRecordsPerWorkload).
	RecordsPerWorkload int
	// Interval is how often sidecars are read (default 250ms).
	Interval time.Duration
	Now      func() time.Time // default time.Now
	Log      *slog.Logger
}

// New returns a dashboard over m; Run starts collecting.
func New(m Mesh, o Options) *Dashboard {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Dashboard{mesh: m, collector: NewCollector(m, o.RecordsPerWorkload, o.Interval, o.Log), now: o.Now, log: o.Log}
}

// Collector is where the records are kept.
func (d *Dashboard) Collector() *Collector { return d.collector }

// Run collects records until ctx ends.
func (d *Dashboard) Run(ctx context.Context) { d.collector.Run(ctx) }

// MaxWindow is the longest window the API looks back over.
const MaxWindow = 24 * time.Hour

// Handler serves the UI under /dashboard/ and its API under
// /api/dashboard/.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	web, _ := fs.Sub(assets, "web")
	files := http.StripPrefix("/dashboard/", http.FileServerFS(web))
	mux.Handle("GET /dashboard/", files)
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusFound)
	})
	mux.HandleFunc("GET /api/dashboard/graph", func(w http.ResponseWriter, r *http.Request) {
		win, err := window(r, 5*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		since := d.now().Add(-win)
		writeJSON(w, BuildGraph(d.mesh, func(f func(string, *telemetry.Entry)) { d.collector.Each(since, f) }, win))
	})
	mux.HandleFunc("GET /api/dashboard/workload", func(w http.ResponseWriter, r *http.Request) {
		v, err := d.Workload(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, v)
	})
	mux.HandleFunc("GET /api/dashboard/decisions", func(w http.ResponseWriter, r *http.Request) {
		win, err := window(r, 15*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		f := DecisionFilter{Since: d.now().Add(-win), Query: q.Get("q"), Destination: q.Get("destination"), Source: q.Get("source"), All: q.Get("all") == "1", Limit: 500}
		writeJSON(w, map[string]any{"decisions": d.Decisions(f), "dropped": d.collector.Dropped()})
	})
	mux.HandleFunc("GET /api/dashboard/records", func(w http.ResponseWriter, r *http.Request) {
		win, err := window(r, 15*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]any{"records": d.collector.Records(r.URL.Query().Get("workload"), d.now().Add(-win))})
	})
	mux.HandleFunc("GET /api/dashboard/policy", d.servePolicy)
	mux.HandleFunc("POST /api/dashboard/preview", func(w http.ResponseWriter, r *http.Request) {
		win, err := window(r, 15*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "the proposal is over 1 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		proposed, err := DecodeProposal("proposal.yaml", body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cur := d.mesh.Snapshot()
		res, err := replay.Run(cur, replay.Overlay(cur, proposed), d.mesh.Workloads(), d.entries(win))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("GET /api/dashboard/suggest", func(w http.ResponseWriter, r *http.Request) {
		win, err := window(r, 15*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		y, err := replay.Suggest(d.mesh.Workloads(), d.entries(win))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(y) //nolint:errcheck
	})
	return mux
}

// entries are the window's records as the sidecars reported them.
func (d *Dashboard) entries(win time.Duration) []telemetry.Entry {
	rs := d.collector.Records("", d.now().Add(-win))
	out := make([]telemetry.Entry, len(rs))
	for i := range rs {
		out[i] = rs[i].Entry
	}
	return out
}

// DecodeProposal reads a proposed set of PeerAuthentication and
// AuthorizationPolicy resources, strictly, as the config loader does;
// any other kind is refused.
func DecodeProposal(file string, data []byte) ([]*config.Resource, error) {
	rs, err := config.Decode(file, data)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, r := range rs {
		if r.Kind != config.KindPeerAuthentication && r.Kind != config.KindAuthorizationPolicy {
			errs = append(errs, fmt.Errorf("%s: %s: only PeerAuthentication and AuthorizationPolicy are previewed", r.Source, r.Key()))
		}
	}
	if len(rs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no resources", file))
	}
	return rs, errors.Join(errs...)
}

func (d *Dashboard) servePolicy(w http.ResponseWriter, r *http.Request) {
	kind, name := config.Kind(r.URL.Query().Get("kind")), r.URL.Query().Get("name")
	for _, res := range d.mesh.Snapshot().Resources {
		if res.Kind != kind || res.Meta.Namespace+"/"+res.Meta.Name != name {
			continue
		}
		out := map[string]any{"kind": res.Kind, "name": name, "file": res.Source.String()}
		if m, ok := res.Spec.(proto.Message); ok {
			if b, err := protojson.Marshal(m); err == nil {
				out["spec"] = json.RawMessage(b)
			}
		}
		writeJSON(w, out)
		return
	}
	http.Error(w, fmt.Sprintf("no %s %s in the config in force", kind, name), http.StatusNotFound)
}

func window(r *http.Request, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		v = r.URL.Query().Get("window")
	}
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		if n, err2 := strconv.Atoi(v); err2 == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || d <= 0 || d > MaxWindow {
		return 0, fmt.Errorf("since %q: want a duration up to %s, such as 15m", v, MaxWindow)
	}
	return d, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v) //nolint:errcheck
}
