package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"palisade.dev/palisade/internal/config"
)

// Debounce gathers a burst of API events (a `kubectl apply -f` of a
// directory, a thousand pods syncing) into one snapshot.
const Debounce = 20 * time.Millisecond

// Source is the config provider of Kubernetes mode. Informers watch
// Istio's kinds, the mesh ConfigMap and the registry's objects; every
// change publishes a new snapshot. An object that fails to decode or
// validate is reported (a Warning Event on it and the log) and its last
// good version stays in force; so does the last good mesh config. A change
// to pods, Services or EndpointSlices also publishes a snapshot (the same
// resources, a higher version), so the push recomputes the workloads.
type Source struct {
	log      *slog.Logger
	events   *Events
	registry *Registry

	factory informers.SharedInformerFactory
	meshInf cache.SharedIndexInformer
	dynInfs []kindInformer

	snaps *config.Snapshots
	kick  chan struct{}

	// Owned by the goroutine running Run.
	good     map[string]objState
	mesh     *meshv1alpha1.MeshConfig
	meshFile string
	meshRV   string
}

type kindInformer struct {
	kind config.Kind
	inf  cache.SharedIndexInformer
}

type objState struct {
	rv  string // resourceVersion last seen, good or not
	res *config.Resource
}

// NewSource watches the cluster through client and dyn. Nothing runs
// until Run.
func NewSource(client kubernetes.Interface, dyn dynamic.Interface, log *slog.Logger) *Source {
	s := &Source{
		log: log, events: NewEvents(client, log),
		kick: make(chan struct{}, 1), snaps: config.NewSnapshots(), good: map[string]objState{},
	}
	s.factory = informers.NewSharedInformerFactory(client, 0)
	s.registry = newRegistry(s.factory)
	s.meshInf = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(MeshNamespace)).Core().V1().ConfigMaps().Informer()
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	for _, k := range istioKinds {
		s.dynInfs = append(s.dynInfs, kindInformer{kind: k.Kind, inf: dynFactory.ForResource(k.GVR).Informer()})
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	for _, inf := range s.registry.informers() {
		inf.AddEventHandler(h) //nolint:errcheck // the handle only removes the handler
	}
	s.meshInf.AddEventHandler(h) //nolint:errcheck
	for _, k := range s.dynInfs {
		k.inf.AddEventHandler(h) //nolint:errcheck
	}
	return s
}

// Registry is the workload registry fed by the same informers.
func (s *Source) Registry() *Registry { return s.registry }

// Current implements config.Provider.
func (s *Source) Current() *config.Snapshot { return s.snaps.Current() }

// Subscribe implements config.Provider: latest wins, starting with the
// current snapshot once there is one.
func (s *Source) Subscribe() (<-chan *config.Snapshot, func()) { return s.snaps.Subscribe() }

func (s *Source) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run implements config.Provider: it starts the informers, waits for
// their first list, publishes the first snapshot and follows changes
// until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	s.factory.Start(ctx.Done())
	go s.meshInf.Run(ctx.Done())
	synced := []cache.InformerSynced{s.meshInf.HasSynced}
	for _, inf := range s.registry.informers() {
		synced = append(synced, inf.HasSynced)
	}
	for _, k := range s.dynInfs {
		go k.inf.Run(ctx.Done())
		synced = append(synced, k.inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("kube: informers did not sync")
	}
	s.rebuild(ctx)
	timer := time.NewTimer(Debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-s.kick:
			timer.Reset(Debounce)
		case <-timer.C:
			s.rebuild(ctx)
		}
	}
}

// rebuild decodes what changed since the last pass and publishes a
// snapshot.
func (s *Source) rebuild(ctx context.Context) {
	s.loadMesh(ctx)
	present := map[string]bool{}
	for _, k := range s.dynInfs {
		for _, o := range k.inf.GetStore().List() {
			u, ok := o.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			name := ObjectName(k.kind, u.GetNamespace(), u.GetName())
			present[name] = true
			old, seen := s.good[name]
			if seen && old.rv == u.GetResourceVersion() {
				continue
			}
			r, err := DecodeObject(k.kind, u)
			if err != nil {
				s.log.Error("kube: invalid object, keeping its last good version", "object", name, "err", err)
				s.events.Warn(ctx, u, "InvalidConfig", err.Error())
				s.good[name] = objState{rv: u.GetResourceVersion(), res: old.res}
				continue
			}
			s.good[name] = objState{rv: u.GetResourceVersion(), res: r}
		}
	}
	for name := range s.good {
		if !present[name] {
			delete(s.good, name)
		}
	}
	var rs []*config.Resource
	for _, name := range sortedKeys(s.good) {
		if r := s.good[name].res; r != nil {
			rs = append(rs, r)
		}
	}
	config.SortResources(rs)
	mesh := s.mesh
	if mesh == nil {
		mesh = config.DefaultMesh()
	}
	snap := &config.Snapshot{Version: s.Current().Version + 1, Mesh: mesh, MeshFile: s.meshFile, Resources: rs}
	s.snaps.Publish(snap)
	s.log.Debug("kube: snapshot", "version", snap.Version, "resources", len(rs))
}

// loadMesh reads the `istio` ConfigMap when it changed.
func (s *Source) loadMesh(ctx context.Context) {
	var cm *corev1.ConfigMap
	for _, o := range s.meshInf.GetStore().List() {
		if c, ok := o.(*corev1.ConfigMap); ok && c.Name == MeshConfigMap {
			cm = c
		}
	}
	if cm == nil {
		if s.meshRV != "" {
			s.log.Info("kube: mesh ConfigMap removed, Istio's defaults apply")
		}
		s.mesh, s.meshFile, s.meshRV = nil, "", ""
		return
	}
	if cm.ResourceVersion == s.meshRV {
		return
	}
	s.meshRV = cm.ResourceVersion
	m, err := DecodeMesh(cm.Data)
	if err != nil {
		s.log.Error("kube: invalid mesh config, keeping the last good one", "object", ObjectName("ConfigMap", MeshNamespace, MeshConfigMap), "err", err)
		s.events.Warn(ctx, cm, "InvalidConfig", err.Error())
		return
	}
	s.mesh, s.meshFile = m.Mesh, m.MeshFile
	s.log.Info("kube: mesh config loaded", "object", m.MeshFile, "trustDomain", m.Mesh.GetTrustDomain())
}
