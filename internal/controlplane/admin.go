package controlplane

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/ca"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/identity"
)

// WorkloadStatus is one row of `palisade status`.
type WorkloadStatus struct {
	Name           string `json:"name"`
	Namespace      string `json:"namespace"`
	InboundAddress string `json:"inboundAddress"`
	AppAddress     string `json:"appAddress"`
	SpiffeID       string `json:"spiffeId"`
	MTLSMode       string `json:"mtlsMode"`
	Connected      bool   `json:"connected"`
}

// Status lists every workload of the mesh with its addresses, identity
// and effective mTLS mode.
func (s *Server) Status() []WorkloadStatus {
	snap := s.Snapshot()
	td, _ := trustDomain(snap)
	connected := map[string]bool{}
	apps := map[string]map[uint32]string{}
	for _, p := range s.Proxies() {
		connected[p.ID] = p.Connected
		apps[p.ID] = p.App
	}
	var out []WorkloadStatus
	for _, w := range s.Workloads() {
		st := WorkloadStatus{Name: w.Key.Name, Namespace: w.Key.Namespace, Connected: connected[w.Key.String()]}
		if id, err := identity.ForServiceAccount(td, w.Key.Namespace, w.ServiceAccount); err == nil {
			st.SpiffeID = id.String()
		}
		res := PeerResolver(snap, w.Ref())
		if len(w.Ports) > 0 {
			p := w.Ports[0].Number
			st.InboundAddress = w.Inbound[p]
			st.AppAddress = apps[w.Key.String()][p]
			st.MTLSMode = res.Mode(p).Mode.String()
		} else {
			st.MTLSMode = res.Mode(0).Mode.String()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// PeerResolver resolves PeerAuthentication for one workload from a
// snapshot.
func PeerResolver(snap *config.Snapshot, w config.WorkloadRef) *authn.Resolver {
	return authn.Resolve(peerPolicies(snap), w, snap.Mesh.GetRootNamespace())
}

// peerPolicies are the snapshot's PeerAuthentications, for resolving
// many workloads against.
func peerPolicies(snap *config.Snapshot) []authn.Policy {
	var ps []authn.Policy
	for _, r := range snap.OfKind(config.KindPeerAuthentication) {
		ps = append(ps, authn.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: r.Spec.(*securityv1beta1.PeerAuthentication)})
	}
	return ps
}

func (d *Daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }) //nolint:errcheck
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"trustDomain": d.trustDom.Name(), "workloads": d.Push.Status()})
	})
	mux.HandleFunc("GET /api/proxies", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.Push.Proxies()) })
	mux.HandleFunc("GET /api/describe", func(w http.ResponseWriter, r *http.Request) {
		key, err := ParseWorkloadKey(r.URL.Query().Get("workload"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		desc, err := Describe(d.Push.Snapshot(), d.Push.Workloads(), key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, desc)
	})
	// The dashboard, when one is mounted (see Mount).
	ui := func(w http.ResponseWriter, r *http.Request) {
		if h := d.ui.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}
	mux.HandleFunc("/dashboard", ui)
	mux.HandleFunc("/dashboard/", ui)
	mux.HandleFunc("/api/dashboard/", ui)
	mux.HandleFunc("GET /api/ca", func(w http.ResponseWriter, r *http.Request) {
		if d.CA == nil {
			writeJSON(w, map[string]any{"mode": "external", "roots": d.Signer.Bundle().Info()})
			return
		}
		writeJSON(w, d.CA.Status())
	})
	return mux
}

// Mount serves h on the admin listener for /dashboard/ and
// /api/dashboard/. The control plane links no UI itself; the command
// that starts it mounts one.
func (d *Daemon) Mount(h http.Handler) { d.ui.Store(&h) }

// JoinTokenTTL is how long a join token made through the privileged API
// stays valid.
const JoinTokenTTL = 10 * time.Minute

// privilegedHandler serves the operations that change who the mesh
// trusts: minting join tokens and rotating the root. It is served only on
// a unix socket that only the control plane's user can open.
func (d *Daemon) privilegedHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/ca/rotate-root", func(w http.ResponseWriter, r *http.Request) {
		kt, err := ca.ParseKeyType(r.URL.Query().Get("keyType"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if d.CA == nil {
			http.Error(w, "the mesh uses an external CA: rotate roots there and update the bundle", http.StatusConflict)
			return
		}
		st, err := d.CA.RotateRoot(kt)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		d.log.Info("root rotation started", "root", st.ID, "issuesFrom", st.ActiveAt)
		writeJSON(w, st)
	})
	mux.HandleFunc("POST /api/join-token", func(w http.ResponseWriter, r *http.Request) {
		ns, sa := r.URL.Query().Get("namespace"), r.URL.Query().Get("serviceAccount")
		tok, err := d.Tokens.Issue(ns, sa, JoinTokenTTL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.log.Info("join token issued", "namespace", ns, "serviceAccount", sa)
		writeJSON(w, map[string]string{"token": tok})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck
}
