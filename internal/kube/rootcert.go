package kube

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// The ConfigMap that carries the mesh's root bundle into every namespace,
// as istiod publishes it.
const (
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
)

// RootPublisher keeps the ConfigMap istio-ca-root-cert (key root-cert.pem)
// equal to the mesh's trust bundle in every namespace, including those
// created later, and puts it back when it is edited or deleted.
type RootPublisher struct {
	client kubernetes.Interface
	log    *slog.Logger
	bundle latest[[]byte]
}

// NewRootPublisher returns a publisher; nothing is written until Run and
// the first SetBundle.
func NewRootPublisher(client kubernetes.Interface, log *slog.Logger) *RootPublisher {
	return &RootPublisher{client: client, log: log, bundle: newLatest[[]byte]()}
}

// SetBundle hands over the bundle (PEM) to publish; latest wins.
func (p *RootPublisher) SetBundle(pem []byte) { p.bundle.set(append([]byte(nil), pem...)) }

// Run publishes until ctx ends.
func (p *RootPublisher) Run(ctx context.Context) {
	f := informers.NewSharedInformerFactory(p.client, 10*time.Minute)
	nss := f.Core().V1().Namespaces().Informer()
	cms := informers.NewSharedInformerFactoryWithOptions(p.client, 10*time.Minute, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "metadata.name=" + RootCertConfigMap
	})).Core().V1().ConfigMaps().Informer()
	todo := make(chan string, 1024)
	enqueue := func(ns string) {
		select {
		case todo <- ns:
		default:
			p.log.Warn("kube: root cert queue full; the next resync publishes", "namespace", ns)
		}
	}
	nss.AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck
		AddFunc:    func(o any) { enqueue(o.(*corev1.Namespace).Name) },
		UpdateFunc: func(_, o any) { enqueue(o.(*corev1.Namespace).Name) },
	})
	cms.AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck
		UpdateFunc: func(_, o any) { enqueue(o.(*corev1.ConfigMap).Namespace) },
		DeleteFunc: func(o any) {
			if cm, ok := o.(*corev1.ConfigMap); ok {
				enqueue(cm.Namespace)
			}
		},
	})
	go nss.Run(ctx.Done())
	go cms.Run(ctx.Done())
	var cur []byte
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-p.bundle.c:
			cur = b
			for _, o := range nss.GetStore().List() {
				p.publish(ctx, o.(*corev1.Namespace), cur)
			}
		case ns := <-todo:
			if cur == nil {
				continue
			}
			o, ok, _ := nss.GetStore().GetByKey(ns)
			if !ok {
				continue
			}
			p.publish(ctx, o.(*corev1.Namespace), cur)
		}
	}
}

func (p *RootPublisher) publish(ctx context.Context, ns *corev1.Namespace, pem []byte) {
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cms := p.client.CoreV1().ConfigMaps(ns.Name)
	want := string(pem)
	cm, err := cms.Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: ns.Name, Labels: map[string]string{"istio.io/config": "true"}},
			Data:       map[string]string{RootCertKey: want},
		}, metav1.CreateOptions{})
	case err == nil:
		if cm.Data[RootCertKey] == want {
			return
		}
		cm = cm.DeepCopy()
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[RootCertKey] = want
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		p.log.Warn("kube: publish root cert", "namespace", ns.Name, "err", err)
		return
	}
	p.log.Info("kube: root cert published", "namespace", ns.Name)
}
