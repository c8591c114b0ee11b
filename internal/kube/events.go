package kube

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// Component is the source of the Events the control plane records.
const Component = "palisade-control-plane"

// Events records Kubernetes Events on the objects the control plane
// reads, so `kubectl describe` shows why an object is not in force.
type Events struct {
	client kubernetes.Interface
	log    *slog.Logger
	clock  func() time.Time
}

// NewEvents returns an event recorder writing through client.
func NewEvents(client kubernetes.Interface, log *slog.Logger) *Events {
	return &Events{client: client, log: log, clock: time.Now}
}

// Warn records a Warning Event with reason and message on obj.
func (e *Events) Warn(ctx context.Context, obj runtime.Object, reason, message string) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" {
		if _, ok := obj.(*corev1.ConfigMap); ok {
			gvk.Version, gvk.Kind = "v1", "ConfigMap"
		}
	}
	ns := m.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	now := metav1.NewTime(e.clock())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: m.GetName() + ".", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind,
			Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(),
		},
		Reason: reason, Message: message, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: Component},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := e.client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		e.log.Warn("kube: record event", "object", m.GetNamespace()+"/"+m.GetName(), "reason", reason, "err", err)
	}
}
