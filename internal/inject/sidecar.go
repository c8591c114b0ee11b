package inject

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// sidecar is the istio-proxy container: palisade-proxy as uid 1337, its
// identity from the pod (kubelet expands $(VAR) from the env), the root
// bundle and token from their volumes.
func (c *Config) sidecar(p *corev1.Pod, image, mode string, res corev1.ResourceRequirements, probers map[string]any) (*corev1.Container, error) {
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}
	}
	apps := make([]string, 0, len(p.Spec.Containers))
	for _, a := range p.Spec.Containers {
		apps = append(apps, a.Name)
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: field("metadata.name")},
		{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
		{Name: "INSTANCE_IP", ValueFrom: field("status.podIP")},
		{Name: "SERVICE_ACCOUNT", ValueFrom: field("spec.serviceAccountName")},
		{Name: "HOST_IP", ValueFrom: field("status.hostIP")},
		{Name: "ISTIO_META_POD_PORTS", Value: podPorts(p.Spec.Containers)},
		{Name: "ISTIO_META_APP_CONTAINERS", Value: strings.Join(apps, ",")},
		{Name: "ISTIO_META_INTERCEPTION_MODE", Value: mode},
		{Name: "ISTIO_META_WORKLOAD_NAME", Value: canonicalName(p)},
	}
	if len(probers) > 0 {
		b, err := json.Marshal(probers)
		if err != nil {
			return nil, fmt.Errorf("app probers: %w", err)
		}
		env = append(env, corev1.EnvVar{Name: "ISTIO_KUBE_APP_PROBERS", Value: string(b)})
	}
	args := []string{
		"--workload=$(POD_NAMESPACE)/$(POD_NAME)",
		"--service-account=$(SERVICE_ACCOUNT)",
		"--service=" + canonicalName(p),
		"--control-plane=" + c.ControlPlane,
		"--trust-domain=" + c.TrustDomain,
		"--bundle=" + RootCertDir + "/" + RootCertKey,
		"--admin=127.0.0.1:15000",
		"--status=:" + strconv.Itoa(StatusPort),
		"--workload-api=" + WorkloadUDS + "/socket",
	}
	args = append(args, "--token-file="+TokenDir+"/"+TokenFile)
	if mode == ModeNone {
		args = append(args, "--http-proxy=127.0.0.1:"+strconv.Itoa(HTTPProxyPort))
	} else {
		// Captured: the init container's rules send the app's traffic to
		// 15001 and the pod's inbound to 15006, where each declared port
		// is served by number.
		args = append(args, "--capture")
		args = append(args, inboundFlags(p.Spec.Containers)...)
	}
	args = append(args, sortedLabels(p.Labels)...)
	uid, f, t := int64(ProxyUID), false, true
	return &corev1.Container{
		Name: ProxyContainer, Image: image, Command: []string{"palisade-proxy"}, Args: args, Env: env,
		ImagePullPolicy: corev1.PullPolicy(c.ImagePullPolicy), Resources: res,
		Ports: []corev1.ContainerPort{{Name: "http-status", ContainerPort: StatusPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP}},
			InitialDelaySeconds: 1, PeriodSeconds: 2, TimeoutSeconds: 3, FailureThreshold: 30, SuccessThreshold: 1,
		},
		SecurityContext: &corev1.SecurityContext{
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			Privileged:               &f,
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			RunAsNonRoot:             &t,
			ReadOnlyRootFilesystem:   &t,
			AllowPrivilegeEscalation: &f,
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: volToken, MountPath: TokenDir, ReadOnly: true},
			{Name: volRootCert, MountPath: RootCertDir, ReadOnly: true},
			{Name: volWorkloadUDS, MountPath: WorkloadUDS},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}, nil
}

// inboundFlags declare the app containers' TCP ports to the captured
// sidecar, with their names (whose prefix gives the protocol, as Istio's).
func inboundFlags(cs []corev1.Container) []string {
	var out []string
	seen := map[int32]bool{}
	for _, c := range cs {
		for _, p := range c.Ports {
			if (p.Protocol != "" && p.Protocol != corev1.ProtocolTCP) || seen[p.ContainerPort] {
				continue
			}
			seen[p.ContainerPort] = true
			f := "--inbound=port=" + strconv.Itoa(int(p.ContainerPort))
			if p.Name != "" {
				f += ",name=" + p.Name
			}
			out = append(out, f)
		}
	}
	return out
}

// rewriteProbes points the app containers' HTTP, TCP and gRPC probes at the
// sidecar's status port, /app-health/<container>/livez|readyz|startupz,
// as Istio does, and returns the originals keyed by the new path (the
// ISTIO_KUBE_APP_PROBERS value). Named ports are resolved against the
// container; a probe whose port cannot be resolved, and exec probes, are
// left as they are.
func rewriteProbes(cs []corev1.Container) map[string]any {
	out := map[string]any{}
	for i := range cs {
		c := &cs[i]
		for _, pr := range []struct {
			kind  string
			probe *corev1.Probe
		}{{"livez", c.LivenessProbe}, {"readyz", c.ReadinessProbe}, {"startupz", c.StartupProbe}} {
			if pr.probe == nil {
				continue
			}
			path := "/app-health/" + c.Name + "/" + pr.kind
			h := &pr.probe.ProbeHandler
			switch {
			case h.HTTPGet != nil:
				port, ok := resolvePort(c, h.HTTPGet.Port)
				if !ok {
					continue
				}
				orig := map[string]any{"path": h.HTTPGet.Path, "port": port}
				scheme := h.HTTPGet.Scheme
				if scheme == "" {
					scheme = corev1.URISchemeHTTP
				}
				orig["scheme"] = scheme
				if h.HTTPGet.Host != "" {
					orig["host"] = h.HTTPGet.Host
				}
				if len(h.HTTPGet.HTTPHeaders) > 0 {
					orig["httpHeaders"] = h.HTTPGet.HTTPHeaders
				}
				out[path] = map[string]any{"httpGet": orig, "timeoutSeconds": timeout(pr.probe)}
			case h.TCPSocket != nil:
				port, ok := resolvePort(c, h.TCPSocket.Port)
				if !ok {
					continue
				}
				orig := map[string]any{"port": port}
				if h.TCPSocket.Host != "" {
					orig["host"] = h.TCPSocket.Host
				}
				out[path] = map[string]any{"tcpSocket": orig, "timeoutSeconds": timeout(pr.probe)}
			case h.GRPC != nil:
				orig := map[string]any{"port": h.GRPC.Port}
				if h.GRPC.Service != nil {
					orig["service"] = *h.GRPC.Service
				}
				out[path] = map[string]any{"grpc": orig, "timeoutSeconds": timeout(pr.probe)}
			default:
				continue
			}
			*h = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP}}
		}
	}
	return out
}

// timeout is the probe's timeoutSeconds, the kubelet's 1 when unset.
func timeout(p *corev1.Probe) int32 {
	if p.TimeoutSeconds > 0 {
		return p.TimeoutSeconds
	}
	return 1
}
