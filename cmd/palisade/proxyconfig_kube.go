package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/inject"
	"palisade.dev/palisade/internal/proxy"
)

// annotationStatusPort is Istio's annotation for the sidecar's status
// port, where a pod moves it off 15020.
const annotationStatusPort = "status.sidecar.istio.io/port"

// sidecarStatusPort finds pod's sidecar and the port of its status
// listener: Istio's annotation, else the istio-proxy container's
// http-status port, else 15020. A pod without an istio-proxy container
// (as an app container or a native sidecar) has no sidecar.
func sidecarStatusPort(pod *corev1.Pod) (int, error) {
	var sidecar *corev1.Container
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == inject.ProxyContainer {
				sidecar = &cs[i]
			}
		}
	}
	if sidecar == nil {
		return 0, fmt.Errorf("pod %s/%s has no sidecar (no %s container; is injection on for its namespace?)", pod.Namespace, pod.Name, inject.ProxyContainer)
	}
	if v, ok := pod.Annotations[annotationStatusPort]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return 0, fmt.Errorf("pod %s/%s: annotation %s: %q is not a port", pod.Namespace, pod.Name, annotationStatusPort, v)
		}
		return n, nil
	}
	for _, p := range sidecar.Ports {
		if p.Name == "http-status" {
			return int(p.ContainerPort), nil
		}
	}
	return proxy.DefaultStatusPort, nil
}

// sidecarCerts reads the certificate chain and roots of a pod's sidecar
// from its status port, through the API server's pod proxy
// (pods/proxy): the API server reaches the pod's IP, so this works from
// wherever the kubeconfig does, and the user's RBAC decides.
func sidecarCerts(ctx context.Context, client kubernetes.Interface, key controlplane.WorkloadKey) (*proxy.CertsReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pod, err := client.CoreV1().Pods(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("pod %s not found", key)
	}
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", key, err)
	}
	port, err := sidecarStatusPort(pod)
	if err != nil {
		return nil, err
	}
	if pod.Status.PodIP == "" {
		return nil, fmt.Errorf("pod %s has no IP yet (phase %s): its sidecar is not running", key, orDash(string(pod.Status.Phase)))
	}
	body, err := client.CoreV1().Pods(key.Namespace).ProxyGet("http", key.Name, strconv.Itoa(port), "/certs", nil).DoRaw(ctx)
	if err != nil {
		return nil, sidecarError(key, port, body, err)
	}
	var certs proxy.CertsReport
	if err := json.Unmarshal(body, &certs); err != nil {
		return nil, fmt.Errorf("pod %s: sidecar's /certs: %w", key, err)
	}
	return &certs, nil
}

// sidecarError says why the sidecar did not answer: not listening (not
// running, or an older proxy), no certificate yet, or the API server's
// refusal.
func sidecarError(key controlplane.WorkloadKey, port int, body []byte, err error) error {
	var st apierrors.APIStatus
	msg := strings.TrimSpace(string(body))
	if errors.As(err, &st) {
		if m := st.Status().Message; m != "" {
			msg = m
		}
		switch code := st.Status().Code; {
		case code == 503 && strings.Contains(msg, "no certificate yet"):
			return fmt.Errorf("pod %s: its sidecar has no certificate yet (not connected to the control plane?)", key)
		case code == 403:
			return fmt.Errorf("pod %s: reading its sidecar needs pods/proxy in namespace %s: %w", key, key.Namespace, err)
		}
	}
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("pod %s: its sidecar does not answer on status port %d (not running, or not connected yet): %s", key, port, msg)
}
