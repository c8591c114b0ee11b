package install

import (
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/internal/inject"
)

// Webhook configuration names.
const (
	InjectorName  = "palisade-sidecar-injector"
	ValidatorName = "palisade-validator"
)

func (v Values) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: v.CABundle}
	if v.WebhookURL != "" {
		u := strings.TrimSuffix(v.WebhookURL, "/") + path
		cc.URL = &u
		return cc
	}
	port := int32(443)
	cc.Service = &admissionregistrationv1.ServiceReference{Namespace: v.Namespace, Name: Name, Path: &path, Port: &port}
	return cc
}

// webhooks are the MutatingWebhookConfiguration that injects pods of
// namespaces labelled istio-injection=enabled, or istio.io/rev=REVISION
// without istio-injection, and pods labelled sidecar.istio.io/inject=true
// in namespaces with neither (as Istio's), and the
// ValidatingWebhookConfiguration for the Istio kinds Palisade reads. Both
// fail closed: no pod starts without its sidecar, no object lands
// unchecked, while the control plane is away.
func webhooks(v Values) []any {
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	never := admissionregistrationv1.NeverReinvocationPolicy
	timeout := int32(10)
	optOut := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: inject.AnnotationInject, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}}}
	podRule := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
	hook := func(name string, ns, obj *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name: name, ClientConfig: v.clientConfig(inject.InjectPath), Rules: podRule,
			NamespaceSelector: ns, ObjectSelector: obj, SideEffects: &none, FailurePolicy: &fail,
			ReinvocationPolicy: &never, TimeoutSeconds: &timeout, AdmissionReviewVersions: []string{"v1"},
		}
	}
	rev := v.Revision
	if rev == "" {
		rev = "default"
	}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   typeMeta("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
		ObjectMeta: metav1.ObjectMeta{Name: InjectorName, Labels: labels()},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			hook("namespace.sidecar-injector.palisade.dev", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: inject.LabelInjection, Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}}}}, optOut),
			hook("rev.namespace.sidecar-injector.palisade.dev", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: inject.LabelRevision, Operator: metav1.LabelSelectorOpIn, Values: []string{rev}},
				{Key: inject.LabelInjection, Operator: metav1.LabelSelectorOpDoesNotExist}}}, optOut),
			// A pod labelled sidecar.istio.io/inject=true in a namespace
			// that says nothing, as Istio's default revision.
			hook("object.sidecar-injector.palisade.dev", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: inject.LabelInjection, Operator: metav1.LabelSelectorOpDoesNotExist},
				{Key: inject.LabelRevision, Operator: metav1.LabelSelectorOpDoesNotExist}}},
				&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: inject.AnnotationInject, Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}},
					{Key: inject.LabelRevision, Operator: metav1.LabelSelectorOpDoesNotExist}}}),
		},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   typeMeta("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
		ObjectMeta: metav1.ObjectMeta{Name: ValidatorName, Labels: labels()},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validation.palisade.dev", ClientConfig: v.clientConfig(inject.ValidatePath),
			Rules: []admissionregistrationv1.RuleWithOperations{
				istioRule("security.istio.io", "authorizationpolicies", "peerauthentications", "requestauthentications"),
				istioRule("networking.istio.io", "destinationrules", "gateways", "serviceentries", "virtualservices", "workloadentries"),
			},
			SideEffects: &none, FailurePolicy: &fail, TimeoutSeconds: &timeout, AdmissionReviewVersions: []string{"v1"},
		}},
	}
	return []any{mutating, validating}
}

func istioRule(group string, resources ...string) admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: resources},
	}
}
