package kube

import (
	"bytes"
	"context"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// WebhookBundles keeps the caBundle of every webhook in the named
// admission webhook configurations equal to the mesh's roots, as istiod's
// webhook controller does: the webhooks' serving certificate is issued by
// the mesh CA, so after a root rotation the API server must trust the new
// root before that certificate is re-issued from it, or every pod
// creation is refused. An edit that puts another bundle back (a Helm
// upgrade, a kubectl apply) is undone.
type WebhookBundles struct {
	client     kubernetes.Interface
	log        *slog.Logger
	mutating   map[string]bool
	validating map[string]bool
	bundle     latest[[]byte]
}

// NewWebhookBundles returns a patcher for the mutating and validating
// webhook configurations named; nothing is written until Run and the first
// SetBundle.
func NewWebhookBundles(client kubernetes.Interface, mutating, validating []string, log *slog.Logger) *WebhookBundles {
	set := func(names []string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	return &WebhookBundles{client: client, log: log, mutating: set(mutating), validating: set(validating), bundle: newLatest[[]byte]()}
}

// SetBundle hands over the bundle (PEM) to write; latest wins.
func (w *WebhookBundles) SetBundle(pem []byte) { w.bundle.set(append([]byte(nil), pem...)) }

type webhookConfig struct {
	mutating bool
	name     string
}

// Run patches until ctx ends.
func (w *WebhookBundles) Run(ctx context.Context) {
	f := informers.NewSharedInformerFactory(w.client, 10*time.Minute)
	todo := make(chan webhookConfig, 64)
	enqueue := func(c webhookConfig) {
		if (c.mutating && !w.mutating[c.name]) || (!c.mutating && !w.validating[c.name]) {
			return
		}
		select {
		case todo <- c:
		default:
			w.log.Warn("kube: webhook caBundle queue full; the next resync patches", "name", c.name)
		}
	}
	mw := f.Admissionregistration().V1().MutatingWebhookConfigurations().Informer()
	vw := f.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer()
	mw.AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck
		AddFunc: func(o any) {
			enqueue(webhookConfig{true, o.(*admissionregistrationv1.MutatingWebhookConfiguration).Name})
		},
		UpdateFunc: func(_, o any) {
			enqueue(webhookConfig{true, o.(*admissionregistrationv1.MutatingWebhookConfiguration).Name})
		},
	})
	vw.AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck
		AddFunc: func(o any) {
			enqueue(webhookConfig{false, o.(*admissionregistrationv1.ValidatingWebhookConfiguration).Name})
		},
		UpdateFunc: func(_, o any) {
			enqueue(webhookConfig{false, o.(*admissionregistrationv1.ValidatingWebhookConfiguration).Name})
		},
	})
	go mw.Run(ctx.Done())
	go vw.Run(ctx.Done())
	var cur []byte
	all := func() []webhookConfig {
		var out []webhookConfig
		for n := range w.mutating {
			out = append(out, webhookConfig{true, n})
		}
		for n := range w.validating {
			out = append(out, webhookConfig{false, n})
		}
		return out
	}
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-w.bundle.c:
			cur = b
			for _, c := range all() {
				w.patch(ctx, c, cur)
			}
		case c := <-todo:
			if cur != nil {
				w.patch(ctx, c, cur)
			}
		}
	}
}

// patch writes pem into every webhook of one configuration whose caBundle
// differs; a configuration not (yet) installed is left for its Add event.
func (w *WebhookBundles) patch(ctx context.Context, c webhookConfig, pem []byte) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var changed bool
	var err error
	if c.mutating {
		api := w.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		changed, err = patchConfig(ctx, c.name, pem, api.Get, api.Update, func(o *admissionregistrationv1.MutatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
			var out []*admissionregistrationv1.WebhookClientConfig
			for i := range o.Webhooks {
				out = append(out, &o.Webhooks[i].ClientConfig)
			}
			return out
		})
	} else {
		api := w.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		changed, err = patchConfig(ctx, c.name, pem, api.Get, api.Update, func(o *admissionregistrationv1.ValidatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
			var out []*admissionregistrationv1.WebhookClientConfig
			for i := range o.Webhooks {
				out = append(out, &o.Webhooks[i].ClientConfig)
			}
			return out
		})
	}
	switch {
	case apierrors.IsNotFound(err):
		w.log.Debug("kube: webhook configuration not installed", "name", c.name)
	case err != nil:
		// A conflict is retried by the Update event it raced with.
		w.log.Warn("kube: patch webhook caBundle", "name", c.name, "err", err)
	case changed:
		w.log.Info("kube: webhook caBundle patched", "name", c.name)
	}
}

// patchConfig reads one webhook configuration (a fresh copy from the API
// server), sets pem as the caBundle of each of its webhooks, and writes it
// back when one differed.
func patchConfig[T any](ctx context.Context, name string, pem []byte,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
	clientConfigs func(T) []*admissionregistrationv1.WebhookClientConfig,
) (bool, error) {
	o, err := get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	changed := false
	for _, cc := range clientConfigs(o) {
		if !bytes.Equal(cc.CABundle, pem) {
			cc.CABundle, changed = pem, true
		}
	}
	if !changed {
		return false, nil
	}
	_, err = update(ctx, o, metav1.UpdateOptions{})
	return err == nil, err
}

// latest is a one-slot channel where a new value replaces one not yet
// taken.
type latest[T any] struct{ c chan T }

func newLatest[T any]() latest[T] { return latest[T]{c: make(chan T, 1)} }

func (l latest[T]) set(v T) {
	for {
		select {
		case l.c <- v:
			return
		default:
			select {
			case <-l.c:
			default:
			}
		}
	}
}
