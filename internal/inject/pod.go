package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Skip says why a pod is left alone; empty means inject.
func Skip(pod *corev1.Pod) string {
	if v, ok := pod.Annotations[AnnotationInject]; ok && isFalse(v) {
		return "annotation " + AnnotationInject + "=" + v
	}
	if v, ok := pod.Labels[AnnotationInject]; ok && isFalse(v) {
		return "label " + AnnotationInject + "=" + v
	}
	if pod.Spec.HostNetwork {
		return "hostNetwork pod"
	}
	if _, ok := pod.Annotations[AnnotationStatus]; ok {
		return "already injected"
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == ProxyContainer {
			return "already has " + ProxyContainer
		}
	}
	return ""
}

// isFalse reads an annotation as Istio's injector does: "false", "n",
// "no", "off" (any case) opt out.
func isFalse(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "false", "n", "no", "off", "0":
		return true
	}
	return false
}

// Inject returns a copy of pod (in namespace ns) with the sidecar, or an
// error naming the annotation at fault; pod itself is not changed.
func (c *Config) Inject(pod *corev1.Pod, ns string) (*corev1.Pod, error) {
	p := pod.DeepCopy()
	if p.Namespace == "" {
		p.Namespace = ns
	}
	ann := p.Annotations
	get := func(key, def string) string {
		if v, ok := ann[key]; ok {
			return v
		}
		return def
	}
	var errs []error
	mode := get(AnnotationInterceptionMode, c.InterceptionMode)
	if mode != ModeRedirect && mode != ModeNone {
		errs = append(errs, fmt.Errorf("annotation %s: %q: want %s or %s", AnnotationInterceptionMode, mode, ModeRedirect, ModeNone))
	}
	res, err := c.resources(get)
	if err != nil {
		errs = append(errs, err)
	}
	image := get(AnnotationProxyImage, c.Image)

	var probers map[string]any
	if c.RewriteProbes && !isFalse(get(AnnotationRewriteProbes, "true")) {
		probers = rewriteProbes(p.Spec.Containers)
	}
	var init *corev1.Container
	if mode == ModeRedirect {
		init, err = c.initContainer(image, res, get)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("inject: pod %s: %w", podName(p), err)
	}
	sidecar, err := c.sidecar(p, image, mode, res, probers)
	if err != nil {
		return nil, fmt.Errorf("inject: pod %s: %w", podName(p), err)
	}
	appNames := make([]string, 0, len(p.Spec.Containers))
	for i := range p.Spec.Containers {
		appNames = append(appNames, p.Spec.Containers[i].Name)
		if mode == ModeNone {
			proxy := "http://127.0.0.1:" + strconv.Itoa(HTTPProxyPort)
			p.Spec.Containers[i].Env = append(p.Spec.Containers[i].Env,
				corev1.EnvVar{Name: "HTTP_PROXY", Value: proxy}, corev1.EnvVar{Name: "http_proxy", Value: proxy},
				corev1.EnvVar{Name: "NO_PROXY", Value: "127.0.0.1,localhost"})
		}
	}
	status := map[string]any{"containers": []string{ProxyContainer}, "volumes": []string{volToken, volRootCert, volWorkloadUDS}, "imagePullSecrets": nil, "revision": c.revision()}
	if init != nil {
		p.Spec.InitContainers = append(p.Spec.InitContainers, *init)
		status["initContainers"] = []string{InitContainer}
	} else {
		status["initContainers"] = nil
	}
	p.Spec.Containers = append(p.Spec.Containers, *sidecar)
	p.Spec.Volumes = append(p.Spec.Volumes, c.volumes()...)

	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	st, _ := json.Marshal(status)
	p.Annotations[AnnotationStatus] = string(st)
	p.Annotations[AnnotationInterceptionMode] = mode
	if _, ok := p.Annotations[AnnotationDefaultContainer]; !ok && len(appNames) > 0 {
		p.Annotations[AnnotationDefaultContainer] = appNames[0]
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[LabelTLSMode] = "istio"
	p.Labels[LabelCanonicalName] = canonicalName(p)
	p.Labels[LabelCanonicalRev] = canonicalRevision(p)
	return p, nil
}

const (
	volToken       = "istio-token"
	volRootCert    = "istiod-ca-cert"
	volWorkloadUDS = "workload-socket"
)

func (c *Config) volumes() []corev1.Volume {
	exp := c.TokenExpiration
	return []corev1.Volume{
		{Name: volToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: &exp, Path: TokenFile}}}}}},
		{Name: volRootCert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertMap}}}},
		{Name: volWorkloadUDS, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
}

func (c *Config) resources(get func(string, string) string) (corev1.ResourceRequirements, error) {
	var errs []error
	q := func(key, def string) resource.Quantity {
		v := get(key, def)
		r, err := resource.ParseQuantity(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("annotation %s: %q: %w", key, v, err))
		}
		return r
	}
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: q(AnnotationProxyCPU, c.ProxyCPU), corev1.ResourceMemory: q(AnnotationProxyMemory, c.ProxyMemory)},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: q(AnnotationProxyCPULimit, c.ProxyCPULimit), corev1.ResourceMemory: q(AnnotationProxyMemoryLimit, c.ProxyMemoryLimit)},
	}
	return res, errors.Join(errs...)
}

// initContainer runs `palisade-proxy init` with istio-iptables' arguments:
// outbound to 15001, inbound to 15006, uid 1337 excluded.
func (c *Config) initContainer(image string, res corev1.ResourceRequirements, get func(string, string) string) (*corev1.Container, error) {
	var errs []error
	check := func(key, v string, f func(string, bool) error, star bool) string {
		if err := f(v, star); err != nil {
			errs = append(errs, fmt.Errorf("annotation %s: %w", key, err))
		}
		return v
	}
	inclIPs := check(AnnotationIncludeOutIPs, get(AnnotationIncludeOutIPs, c.IncludeIPRanges), cidrList, true)
	exclIPs := check(AnnotationExcludeOutIPs, get(AnnotationExcludeOutIPs, c.ExcludeIPRanges), cidrList, false)
	inclIn := check(AnnotationIncludeInbound, get(AnnotationIncludeInbound, "*"), portList, true)
	exclIn := check(AnnotationExcludeInbound, get(AnnotationExcludeInbound, ""), portList, false)
	args := []string{"init", "-p", "15001", "-z", "15006", "-u", strconv.Itoa(ProxyUID), "-m", ModeRedirect,
		"-i", inclIPs, "-x", exclIPs, "-b", inclIn, "-d", excludeInbound(c.ExcludeInbound, exclIn)}
	if v, ok := lookup(get, AnnotationExcludeOutPorts); ok {
		args = append(args, "-o", check(AnnotationExcludeOutPorts, v, portList, false))
	}
	if v, ok := lookup(get, AnnotationIncludeOutPorts); ok {
		args = append(args, "-q", check(AnnotationIncludeOutPorts, v, portList, true))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f, root := false, int64(0)
	return &corev1.Container{
		Name: InitContainer, Image: image, Command: []string{"palisade-proxy"}, Args: args,
		ImagePullPolicy: corev1.PullPolicy(c.ImagePullPolicy), Resources: res,
		SecurityContext: &corev1.SecurityContext{
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
			Privileged:               &f,
			RunAsUser:                &root,
			RunAsGroup:               &root,
			RunAsNonRoot:             &f,
			ReadOnlyRootFilesystem:   &f,
			AllowPrivilegeEscalation: &f,
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}, nil
}

// lookup reports an annotation only when written.
func lookup(get func(string, string) string, key string) (string, bool) {
	const unset = "\x00"
	v := get(key, unset)
	return v, v != unset
}

// excludeInbound is Istio's excludeInboundPort: the status port, 15021 and
// 15090 are never captured, plus the mesh-wide and the pod's own list.
func excludeInbound(lists ...string) string {
	seen := map[string]bool{}
	out := []string{}
	for _, p := range append([]string{strconv.Itoa(StatusPort), "15021", "15090"}, splitList(strings.Join(lists, ","))...) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// portList checks a comma-separated list of ports ("*" alone when star).
func portList(v string, star bool) error {
	if star && strings.TrimSpace(v) == "*" {
		return nil
	}
	for _, p := range splitList(v) {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("%q: port %q: want 1-65535", v, p)
		}
	}
	return nil
}

// cidrList checks a comma-separated list of CIDRs ("*" alone when star).
func cidrList(v string, star bool) error {
	if star && strings.TrimSpace(v) == "*" {
		return nil
	}
	for _, s := range splitList(v) {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q: %q is not a CIDR", v, s)
		}
	}
	return nil
}

func podName(p *corev1.Pod) string {
	name := p.Name
	if name == "" {
		name = p.GenerateName + "*"
	}
	return p.Namespace + "/" + name
}

// canonicalName follows Istio: the canonical-name label, then
// app.kubernetes.io/name, then app, then the pod's name without its
// generated suffix.
func canonicalName(p *corev1.Pod) string {
	for _, k := range []string{LabelCanonicalName, "app.kubernetes.io/name", "app"} {
		if v := p.Labels[k]; v != "" {
			return v
		}
	}
	if p.GenerateName != "" {
		name := strings.TrimSuffix(p.GenerateName, "-")
		if h := p.Labels["pod-template-hash"]; h != "" {
			name = strings.TrimSuffix(name, "-"+h)
		}
		return name
	}
	return p.Name
}

func canonicalRevision(p *corev1.Pod) string {
	for _, k := range []string{LabelCanonicalRev, "app.kubernetes.io/version", "version"} {
		if v := p.Labels[k]; v != "" {
			return v
		}
	}
	return "latest"
}

// podPorts is ISTIO_META_POD_PORTS: the app containers' ports as JSON.
func podPorts(cs []corev1.Container) string {
	var ports []corev1.ContainerPort
	for _, c := range cs {
		ports = append(ports, c.Ports...)
	}
	if len(ports) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ports)
	return string(b)
}

// sortedLabels are the pod's labels as --label flags, in a stable order.
func sortedLabels(ls map[string]string) []string {
	out := make([]string, 0, len(ls))
	for k, v := range ls {
		out = append(out, "--label="+k+"="+v)
	}
	sort.Strings(out)
	return out
}

// resolvePort turns a named container port into its number.
func resolvePort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, p.IntVal > 0
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return int32(n), n > 0
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}
