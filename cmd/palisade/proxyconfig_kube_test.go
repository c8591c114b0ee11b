package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/internal/controlplane"
)

func TestSidecarStatusPort(t *testing.T) {
	app := corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	sidecar := corev1.Container{Name: "istio-proxy", Ports: []corev1.ContainerPort{{Name: "http-status", ContainerPort: 15021}}}
	bare := corev1.Container{Name: "istio-proxy"}
	tests := []struct {
		name        string
		containers  []corev1.Container
		init        []corev1.Container
		annotations map[string]string
		want        int
		wantErr     string
	}{
		{name: "injected", containers: []corev1.Container{app, sidecar}, want: 15021},
		{name: "native sidecar", containers: []corev1.Container{app}, init: []corev1.Container{sidecar}, want: 15021},
		{name: "no status port declared", containers: []corev1.Container{app, bare}, want: 15020},
		{name: "annotation wins", containers: []corev1.Container{app, sidecar}, annotations: map[string]string{"status.sidecar.istio.io/port": "16000"}, want: 16000},
		{name: "bad annotation", containers: []corev1.Container{app, sidecar}, annotations: map[string]string{"status.sidecar.istio.io/port": "x"}, wantErr: "is not a port"},
		{name: "no sidecar", containers: []corev1.Container{app}, wantErr: "pod shop/web-0 has no sidecar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Annotations: tt.annotations},
				Spec: corev1.PodSpec{Containers: tt.containers, InitContainers: tt.init}}
			got, err := sidecarStatusPort(pod)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("port %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestSidecarError(t *testing.T) {
	key := controlplane.WorkloadKey{Namespace: "shop", Name: "web-0"}
	status := func(code int32, msg string) error {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}}
	}
	tests := []struct {
		name string
		body string
		err  error
		want string
	}{
		{name: "not listening", err: status(http.StatusServiceUnavailable, "error trying to reach service: dial tcp 10.1.2.3:15020: connect: connection refused"),
			want: "its sidecar does not answer on status port 15020 (not running, or not connected yet): error trying to reach service"},
		{name: "no certificate yet", body: "no certificate yet\n", err: status(http.StatusServiceUnavailable, "no certificate yet"),
			want: "its sidecar has no certificate yet"},
		{name: "no pods/proxy right", err: status(http.StatusForbidden, `pods "web-0" is forbidden`), want: "needs pods/proxy in namespace shop"},
		{name: "transport", err: errors.New("EOF"), want: "status port 15020 (not running, or not connected yet): EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sidecarError(key, 15020, []byte(tt.body), tt.err).Error()
			if !strings.Contains(got, tt.want) || !strings.HasPrefix(got, "pod shop/web-0") {
				t.Errorf("error %q, want %q", got, tt.want)
			}
		})
	}
}
