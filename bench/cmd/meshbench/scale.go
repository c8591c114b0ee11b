package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/xds"
)

// scaleParams is the simulated mesh.
type scaleParams struct {
	Workloads, Services, Policies, Namespaces int
	// Sample, when set, generates only this many proxies' configs (evenly
	// spread) and extrapolates linearly to all of them: each proxy's
	// config is computed independently, so the cost is linear.
	Sample int
}

var (
	scaleFull  = scaleParams{Workloads: 10000, Services: 1000, Policies: 5000, Namespaces: 100, Sample: 500}
	scaleQuick = scaleParams{Workloads: 1000, Services: 100, Policies: 500, Namespaces: 10}
)

// scaleResult is what one simulated mesh measured.
type scaleResult struct {
	P                 scaleParams
	Workers           int
	Generated         int // proxies whose configs were generated (Sample, or all)
	BuildServices     time.Duration
	GenerateAll       time.Duration // every proxy's full config, Generate per proxy
	ResourcesPerProxy float64
	BytesPerProxy     float64
	Changes           []changeResult
}

// changeResult is one policy edit pushed to every simulated proxy: each
// proxy's config regenerated and diffed against what it holds, as the
// push server does.
type changeResult struct {
	What      string
	Duration  time.Duration
	Reached   int           // proxies with something to receive
	Resources int           // upserted or removed resources, summed over proxies
	Bytes     int64         // serialized bytes of the upserted resources
	Services  time.Duration // BuildServices, paid once per change
}

func runScaleCmd(args []string) error {
	fs := flag.NewFlagSet("meshbench scale", flag.ContinueOnError)
	p := scaleFull
	fs.IntVar(&p.Workloads, "workloads", p.Workloads, "simulated workloads (one proxy each)")
	fs.IntVar(&p.Services, "services", p.Services, "services the workloads back")
	fs.IntVar(&p.Policies, "policies", p.Policies, "AuthorizationPolicies")
	fs.IntVar(&p.Namespaces, "namespaces", p.Namespaces, "namespaces")
	fs.IntVar(&p.Sample, "sample", p.Sample, "generate this many proxies' configs and extrapolate (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := runScale(p)
	if err != nil {
		return err
	}
	fmt.Fprint(os.Stdout, r.markdown())
	return nil
}

// scaleMesh builds the simulated snapshot: services backed by equal
// numbers of workloads spread over namespaces; policies spread over the
// services (selector ALLOWs), with one namespace-wide ALLOW per namespace
// and one mesh-wide DENY in the root namespace.
func scaleMesh(p scaleParams, rootPolicy string) (*config.Snapshot, []*controlplane.Workload) {
	snap := &config.Snapshot{Mesh: config.DefaultMesh()}
	root := snap.Mesh.GetRootNamespace()
	add := func(kind config.Kind, ns, name string, labels map[string]string, spec any) {
		snap.Resources = append(snap.Resources, &config.Resource{Kind: kind, Meta: config.Meta{Namespace: ns, Name: name, Labels: labels}, Spec: spec})
	}
	svcNS := func(s int) string { return fmt.Sprintf("ns-%d", s%p.Namespaces) }
	add(config.KindPeerAuthentication, root, "default", nil, &securityv1beta1.PeerAuthentication{
		Mtls: &securityv1beta1.PeerAuthentication_MutualTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_STRICT}})
	add(config.KindAuthorizationPolicy, root, "mesh-deny", nil, &securityv1beta1.AuthorizationPolicy{
		Action: securityv1beta1.AuthorizationPolicy_DENY,
		Rules: []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{
			Paths: []string{rootPolicy}}}}}},
	})
	var workloads []*controlplane.Workload
	for i := range p.Workloads {
		s := i % p.Services
		ns, svc := svcNS(s), fmt.Sprintf("svc-%d", s)
		name := fmt.Sprintf("%s-%d", svc, i/p.Services)
		spec := &config.WorkloadSpec{ServiceAccount: svc, Service: svc, Command: "app",
			Ports: []config.WorkloadPort{{Name: "http", Number: 8080, Protocol: "HTTP"}}}
		add(config.KindWorkload, ns, name, map[string]string{"app": svc}, spec)
		workloads = append(workloads, &controlplane.Workload{
			Key: controlplane.WorkloadKey{Namespace: ns, Name: name}, Labels: map[string]string{"app": svc},
			ServiceAccount: svc, Service: svc, Ports: spec.Ports,
			Inbound: map[uint32]string{8080: fmt.Sprintf("10.%d.%d.%d:15006", i>>16&255, i>>8&255, i&255)},
		})
	}
	for n := range p.Namespaces {
		ns := fmt.Sprintf("ns-%d", n)
		add(config.KindAuthorizationPolicy, ns, "namespace-allow", nil, &securityv1beta1.AuthorizationPolicy{
			Rules: []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Namespaces: []string{ns}}}}}},
		})
	}
	for i := p.Namespaces + 1; i < p.Policies; i++ {
		s := i % p.Services
		add(config.KindAuthorizationPolicy, svcNS(s), fmt.Sprintf("allow-%d", i), nil, &securityv1beta1.AuthorizationPolicy{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("svc-%d", s)}},
			Rules: []*securityv1beta1.Rule{{
				From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Principals: []string{
					fmt.Sprintf("cluster.local/ns/%s/sa/svc-%d", svcNS(s+1), s+1)}}}},
				To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Methods: []string{"GET", "POST"},
					Paths: []string{fmt.Sprintf("/api/v%d/*", i%3)}}}},
			}},
		})
	}
	config.SortResources(snap.Resources)
	return snap, workloads
}

// held is what one simulated proxy holds: type → name → version. Equal
// maps are shared (most proxies hold the same services), which keeps
// 10,000 proxies' state in memory.
type held map[string]map[string]string

type interner struct {
	mu sync.Mutex
	m  map[string]map[string]string
}

func (in *interner) versions(rs map[string]*xds.Resource) map[string]string {
	names := make([]string, 0, len(rs))
	for n := range rs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n + "=" + rs[n].Version + ";"))
	}
	key := hex.EncodeToString(h.Sum(nil))
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[key]; ok {
		return v
	}
	v := make(map[string]string, len(rs))
	for _, n := range names {
		v[n] = rs[n].Version
	}
	in.m[key] = v
	return v
}

func runScale(p scaleParams) (*scaleResult, error) {
	workers := runtime.GOMAXPROCS(0)
	r := &scaleResult{P: p, Workers: workers}
	snap, ws := scaleMesh(p, "/admin/*")
	bundle := []byte(testBundlePEM)
	t0 := time.Now()
	svcs := controlplane.BuildServices(snap, ws)
	r.BuildServices = time.Since(t0)
	in := &controlplane.Input{Snapshot: snap, Services: svcs, Bundle: bundle}

	all := ws
	if p.Sample > 0 && p.Sample < len(ws) {
		ws = nil
		for i := range p.Sample {
			ws = append(ws, all[i*len(all)/p.Sample])
		}
	}
	scale := float64(len(all)) / float64(len(ws))
	r.Generated = len(ws)
	state := make([]held, len(ws))
	it := &interner{m: map[string]map[string]string{}}
	var resources, bytes int64
	var mu sync.Mutex
	t0 = time.Now()
	err := forEach(len(ws), workers, func(i int) error {
		set, err := controlplane.Generate(in, controlplane.Proxy{Workload: ws[i]})
		if err != nil {
			return err
		}
		h := held{}
		var n, b int64
		for t, rs := range set {
			h[t] = it.versions(rs)
			for _, x := range rs {
				n++
				b += int64(len(x.Any.GetValue()))
			}
		}
		state[i] = h
		mu.Lock()
		resources += n
		bytes += b
		mu.Unlock()
		return nil
	})
	r.GenerateAll = time.Duration(float64(time.Since(t0)) * scale)
	if err != nil {
		return nil, err
	}
	r.ResourcesPerProxy = float64(resources) / float64(len(ws))
	r.BytesPerProxy = float64(bytes) / float64(len(ws))
	in.Services = nil

	// A mesh-wide policy edit: every proxy holds it.
	snap2, _ := scaleMesh(p, "/admin/v2/*")
	c, err := pushChange(snap2, all, ws, bundle, state, workers, "edit the root namespace's DENY policy (applies to every proxy)")
	if err != nil {
		return nil, err
	}
	c.Duration = time.Duration(float64(c.Duration-c.Services)*scale) + c.Services
	c.Reached = int(float64(c.Reached) * scale)
	c.Resources = int(float64(c.Resources) * scale)
	c.Bytes = int64(float64(c.Bytes) * scale)
	r.Changes = append(r.Changes, c)
	return r, nil
}

// pushChange does what the push server does when the snapshot changes:
// rebuild the services, regenerate every proxy's config and diff it
// against what the proxy holds.
func pushChange(snap *config.Snapshot, all, ws []*controlplane.Workload, bundle []byte, state []held, workers int, what string) (changeResult, error) {
	c := changeResult{What: what}
	var mu sync.Mutex
	t0 := time.Now()
	in := &controlplane.Input{Snapshot: snap, Services: controlplane.BuildServices(snap, all), Bundle: bundle}
	c.Services = time.Since(t0)
	err := forEach(len(ws), workers, func(i int) error {
		set, err := controlplane.Generate(in, controlplane.Proxy{Workload: ws[i]})
		if err != nil {
			return err
		}
		var n int
		var b int64
		for t, want := range set {
			up, removed := xds.Diff(state[i][t], want)
			n += len(up) + len(removed)
			for _, x := range up {
				b += int64(len(x.Any.GetValue()))
			}
		}
		for t, have := range state[i] {
			if _, ok := set[t]; !ok {
				n += len(have)
			}
		}
		mu.Lock()
		if n > 0 {
			c.Reached++
		}
		c.Resources += n
		c.Bytes += b
		mu.Unlock()
		return nil
	})
	c.Duration = time.Since(t0)
	return c, err
}

func forEach(n, workers int, f func(int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (r *scaleResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Simulated mesh: %d workloads (one proxy each), %d services, %d AuthorizationPolicies, %d namespaces; %d generator workers (GOMAXPROCS).\n\n",
		r.P.Workloads, r.P.Services, r.P.Policies, r.P.Namespaces, r.Workers)
	if r.Generated < r.P.Workloads {
		fmt.Fprintf(&b, "Configs generated for %d of the %d proxies (evenly spread) and extrapolated linearly: each proxy's config is computed on its own, so the cost is linear in proxies. Services are built from all %d workloads.\n\n", r.Generated, r.P.Workloads, r.P.Workloads)
	}
	fmt.Fprintf(&b, "| measure | value |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| BuildServices (once per change) | %s |\n", r.BuildServices.Round(time.Microsecond))
	fmt.Fprintf(&b, "| every proxy's full config (Generate × %d) | %s (%s per proxy) |\n", r.P.Workloads, r.GenerateAll.Round(time.Millisecond),
		(r.GenerateAll / time.Duration(r.P.Workloads)).Round(time.Microsecond))
	fmt.Fprintf(&b, "| resources per proxy | %.0f (%.1f KiB serialized) |\n", r.ResourcesPerProxy, r.BytesPerProxy/1024)
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "| one policy change: %s | %s to regenerate and diff all %d proxies; %d proxies receive %d resources, %s bytes in all |\n",
			c.What, c.Duration.Round(time.Millisecond), r.P.Workloads, c.Reached, c.Resources, thousands(c.Bytes))
	}
	return b.String()
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, out...), ",")
}

// testBundlePEM is a stand-in trust bundle: Generate only wraps it.
const testBundlePEM = `-----BEGIN CERTIFICATE-----
MIIBJzCBzqADAgECAgEBMAoGCCqGSM49BAMCMBAxDjAMBgNVBAMTBWJlbmNoMB4X
DTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAwMDAwMFowEDEOMAwGA1UEAxMFYmVuY2gw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAoxMwETAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAIgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAA=
-----END CERTIFICATE-----
`
