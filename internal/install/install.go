package install

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"palisade.dev/palisade/internal/config"
)

// CRDs is Istio's CustomResourceDefinitions file from istio.io/api, as
// shipped (see crds.sh).
//
//go:embed crds.gen.yaml
var CRDs []byte

// Names of what the control plane runs as.
const (
	Name           = "palisade"
	ServiceAccount = "palisade"
	GRPCPort       = 15012 // proxies: config push and the CA
	MonitoringPort = 15014 // admin API
	WebhookPort    = 15017 // admission webhooks, behind the Service's 443

	// CACertsSecret is the Secret, in the control plane's namespace, that
	// plugs in an intermediate CA as Istio's cacerts does (ca-cert.pem,
	// ca-key.pem, root-cert.pem, cert-chain.pem); mounted optional at
	// CACertsDir. Without it the control plane makes a self-signed root in
	// its state directory, an emptyDir: a new pod makes a new root.
	CACertsSecret = "cacerts"
	CACertsDir    = "/etc/cacerts"
)

// Values are what an installation varies by; the Helm chart's values.yaml
// has the same, under the same names.
type Values struct {
	Namespace  string // istio-system
	Image      string // the palisade image (control plane)
	ProxyImage string // the palisade-proxy image injected into pods
	// CABundle is the PEM that verifies the webhooks' serving certificate:
	// the mesh's root(s) when the control plane serves with a certificate
	// from the mesh CA.
	CABundle []byte
	// WebhookURL, when set, makes the API server call the webhooks at
	// this https URL (InjectPath and ValidatePath appended) instead of
	// through the Service: for a control plane that runs outside the
	// cluster.
	WebhookURL string
	Revision   string // istio.io/rev value that injects besides istio-injection=enabled
	Replicas   int32
}

// Defaults are the values an installation starts from.
func Defaults() Values {
	return Values{Namespace: "istio-system", Revision: "default", Replicas: 1}
}

// Validate names every bad value.
func (v Values) Validate() error {
	var errs []error
	if !config.IsDNS1123Label(v.Namespace) {
		errs = append(errs, fmt.Errorf("install: namespace %q: must be a DNS label", v.Namespace))
	}
	if v.Image == "" {
		errs = append(errs, errors.New("install: image is required"))
	}
	if v.ProxyImage == "" {
		errs = append(errs, errors.New("install: proxy image is required"))
	}
	if b, _ := pem.Decode(v.CABundle); b == nil || b.Type != "CERTIFICATE" {
		errs = append(errs, errors.New("install: the CA bundle must be PEM certificates"))
	}
	if v.WebhookURL != "" {
		if u, err := url.Parse(v.WebhookURL); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("install: webhook URL %q: want https://HOST[:PORT][/PATH]", v.WebhookURL))
		}
	}
	if v.Revision != "" && !config.IsDNS1123Label(v.Revision) {
		errs = append(errs, fmt.Errorf("install: revision %q: must be a DNS label", v.Revision))
	}
	if v.Replicas < 1 {
		errs = append(errs, fmt.Errorf("install: replicas %d: at least 1", v.Replicas))
	}
	return errors.Join(errs...)
}

// Objects are the manifests other than the CRDs, in apply order.
func Objects(v Values) ([]any, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	objs := []any{
		&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: v.Namespace, Labels: labels()}},
		&corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: meta(ServiceAccount, v.Namespace)},
	}
	objs = append(objs, rbac(v)...)
	objs = append(objs, service(v), deployment(v))
	objs = append(objs, webhooks(v)...)
	return objs, nil
}

// Render writes every manifest as one YAML stream: Istio's CRDs, then
// Objects.
func Render(v Values) ([]byte, error) {
	objs, err := Objects(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(CRDs)
	for _, o := range objs {
		y, err := manifest(o)
		if err != nil {
			return nil, fmt.Errorf("install: %w", err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// manifest is o as YAML without what the typed structs write empty and
// a manifest leaves out: status, an empty spec, strategy or resources.
func manifest(o any) ([]byte, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if s, ok := m["spec"].(map[string]any); ok && len(s) == 0 {
		delete(m, "spec")
	}
	prune(m)
	return yaml.Marshal(m)
}

func prune(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if em, ok := e.(map[string]any); ok && len(em) == 0 && (k == "strategy" || k == "resources" || k == "creationTimestamp") {
				delete(x, k)
				continue
			}
			if e == nil && k == "creationTimestamp" {
				delete(x, k)
				continue
			}
			prune(e)
		}
	case []any:
		for _, e := range x {
			prune(e)
		}
	}
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func labels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": Name, "app.kubernetes.io/part-of": Name}
}

func meta(name, ns string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels()}
}

func service(v Values) *corev1.Service {
	port := func(name string, p, target int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: p, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}
	}
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: meta(Name, v.Namespace),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app.kubernetes.io/name": Name},
			Ports:    []corev1.ServicePort{port("grpc-xds", GRPCPort, GRPCPort), port("https-webhook", 443, WebhookPort), port("http-monitoring", MonitoringPort, MonitoringPort)},
		},
	}
}

// ServiceHost is the name the webhooks' serving certificate must carry.
func ServiceHost(ns string) string { return Name + "." + ns + ".svc" }

func deployment(v Values) *appsv1.Deployment {
	f, t, uid := false, true, int64(1337)
	rev := v.Revision
	if rev == "" {
		rev = "default"
	}
	args := []string{
		"control-plane",
		"--kubernetes",
		fmt.Sprintf("--listen=0.0.0.0:%d", GRPCPort),
		fmt.Sprintf("--admin=0.0.0.0:%d", MonitoringPort),
		fmt.Sprintf("--webhook-listen=0.0.0.0:%d", WebhookPort),
		"--webhook-dns-names=" + strings.Join([]string{ServiceHost(v.Namespace), Name + "." + v.Namespace}, ","),
		"--inject-image=" + v.ProxyImage,
		fmt.Sprintf("--inject-control-plane=%s:%d", ServiceHost(v.Namespace), GRPCPort),
		"--inject-revision=" + rev,
		"--state=/var/lib/palisade",
		"--cacerts=" + CACertsDir, "--cacerts-optional",
	}
	optional := true
	podLabels := map[string]string{"app.kubernetes.io/name": Name, "app.kubernetes.io/part-of": Name, "sidecar.istio.io/inject": "false"}
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: meta(Name, v.Namespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: &v.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": Name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName: ServiceAccount,
					Containers: []corev1.Container{{
						Name: "control-plane", Image: v.Image, Args: args,
						Env: []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}},
						Ports: []corev1.ContainerPort{
							{Name: "grpc-xds", ContainerPort: GRPCPort, Protocol: corev1.ProtocolTCP},
							{Name: "https-webhook", ContainerPort: WebhookPort, Protocol: corev1.ProtocolTCP},
							{Name: "http-monitoring", ContainerPort: MonitoringPort, Protocol: corev1.ProtocolTCP},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "state", MountPath: "/var/lib/palisade"}, {Name: CACertsSecret, MountPath: CACertsDir, ReadOnly: true}},
						SecurityContext: &corev1.SecurityContext{
							RunAsUser: &uid, RunAsGroup: &uid, RunAsNonRoot: &t, ReadOnlyRootFilesystem: &t,
							AllowPrivilegeEscalation: &f, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: CACertsSecret, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: CACertsSecret, Optional: &optional}}},
					},
				},
			},
		},
	}
}
