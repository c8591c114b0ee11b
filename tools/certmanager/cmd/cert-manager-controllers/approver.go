package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	apiutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	cmlisters "github.com/cert-manager/cert-manager/pkg/client/listers/certmanager/v1"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
)

// Certificate request backoff of the trigger controller: cert-manager's
// defaults are 1h and 32h, too slow for a test; a minute and an hour here.
const (
	defaultMinBackoff = time.Minute
	defaultMaxBackoff = time.Hour
)

// policyApprover is cert-manager's approver with a deny rule in front: a
// request whose CSR has a URI SAN matching deny is Denied, every other one
// goes to the approver unchanged.
type policyApprover struct {
	*approver.Controller
	deny     *regexp.Regexp
	lister   cmlisters.CertificateRequestLister
	client   cmclient.Interface
	recorder record.EventRecorder
}

func newApprover(factory *controllerpkg.ContextFactory, deny *regexp.Regexp) (controllerpkg.Interface, error) {
	if deny == nil {
		return controllerpkg.Known()[approver.ControllerName](factory)
	}
	return controllerpkg.NewBuilder(factory, approver.ControllerName).
		For(&policyApprover{Controller: new(approver.Controller), deny: deny}).Complete()
}

func (p *policyApprover) Register(ctx *controllerpkg.Context) (workqueue.TypedRateLimitingInterface[types.NamespacedName], []cache.InformerSynced, error) {
	q, synced, err := p.Controller.Register(ctx)
	if err != nil {
		return nil, nil, err
	}
	p.lister = ctx.SharedInformerFactory.Certmanager().V1().CertificateRequests().Lister()
	p.client = ctx.CMClient
	p.recorder = ctx.Recorder
	return q, synced, nil
}

func (p *policyApprover) ProcessItem(ctx context.Context, key types.NamespacedName) error {
	cr, err := p.lister.CertificateRequests(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if apiutil.CertificateRequestIsApproved(cr) || apiutil.CertificateRequestIsDenied(cr) {
		return nil
	}
	uri, denied := p.denied(cr)
	if !denied {
		return p.Controller.ProcessItem(ctx, key)
	}
	cr = cr.DeepCopy()
	msg := fmt.Sprintf("URI SAN %s is refused by policy %q", uri, p.deny)
	apiutil.SetCertificateRequestCondition(cr, cmapi.CertificateRequestConditionDenied, cmmeta.ConditionTrue, "policy.palisade.dev", msg)
	if _, err := p.client.CertmanagerV1().CertificateRequests(cr.Namespace).UpdateStatus(ctx, cr, metav1.UpdateOptions{}); err != nil {
		return err
	}
	p.recorder.Event(cr, corev1.EventTypeWarning, "policy.palisade.dev", msg)
	return nil
}

// denied reports the first URI SAN of the request's CSR that the policy
// refuses. An undecodable CSR is left to the signer, which fails it.
func (p *policyApprover) denied(cr *cmapi.CertificateRequest) (string, bool) {
	block, _ := pem.Decode(cr.Spec.Request)
	if block == nil {
		return "", false
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", false
	}
	for _, u := range csr.URIs {
		if p.deny.MatchString(u.String()) {
			return u.String(), true
		}
	}
	return "", false
}
