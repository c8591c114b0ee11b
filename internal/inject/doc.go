// Package inject is the control plane's admission webhooks, served over
// HTTPS to the Kubernetes API server with k8s.io/api/admission/v1
// AdmissionReview messages.
//
// The mutating webhook (/inject) injects the sidecar into pods of
// namespaces labelled istio-injection=enabled (or istio.io/rev=REVISION),
// as Istio's sidecar injector does: the MutatingWebhookConfiguration
// selects the namespaces and pods; the webhook skips a pod annotated or
// labelled sidecar.istio.io/inject: "false", a hostNetwork pod, and one
// already injected. It adds the istio-proxy container (palisade-proxy,
// uid 1337), the istio-init init container (`palisade-proxy init` with
// Istio's istio-iptables arguments, from the traffic.sidecar.istio.io/*
// annotations), the projected service-account token (audience istio-ca,
// /var/run/secrets/tokens/istio-token), the istio-ca-root-cert ConfigMap
// at /var/run/secrets/istio, and rewrites the app's HTTP, TCP and gRPC probes to
// the sidecar's status port (15020, /app-health/<container>/livez|readyz|
// startupz), the originals going to the sidecar in ISTIO_KUBE_APP_PROBERS
// (internal/proxy forwards them). With interception mode NONE (the
// sidecar.istio.io/interceptionMode annotation, or the injector's
// default) no capture rules are written: the app reaches the mesh through
// the sidecar's HTTP proxy, set as HTTP_PROXY in each app container.
//
// The validating webhook (/validate) decodes and validates Istio's kinds
// with internal/config, as `palisade analyze` does, and refuses an invalid
// object with the same message without the file and line. Warnings go
// back to kubectl as admission warnings.
package inject
