package inject

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testConfig() Config {
	c := Defaults()
	c.Image = "registry.example/palisade-proxy:1.0"
	return c
}

// webPod is an app with a named HTTP port, HTTP liveness and readiness
// probes and a TCP startup probe.
func webPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Labels: map[string]string{"app": "web", "version": "v2"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			Containers: []corev1.Container{{
				Name: "web", Image: "web:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/healthz", Port: intstr.FromString("http"),
					HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}}}}, TimeoutSeconds: 3, PeriodSeconds: 7},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/ready", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTPS}}},
				StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}},
			}},
		},
	}
}

func container(p *corev1.Pod, name string, init bool) *corev1.Container {
	cs := p.Spec.Containers
	if init {
		cs = p.Spec.InitContainers
	}
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func envOf(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestInjectRedirect(t *testing.T) {
	cfg := testConfig()
	in := webPod()
	out, err := cfg.Inject(in, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if in.Spec.Containers[0].LivenessProbe.HTTPGet.Port.StrVal != "http" || len(in.Spec.Containers) != 1 {
		t.Fatal("Inject changed its input")
	}
	proxy := container(out, ProxyContainer, false)
	if proxy == nil || out.Spec.Containers[len(out.Spec.Containers)-1].Name != ProxyContainer {
		t.Fatalf("no %s as the last container: %+v", ProxyContainer, out.Spec.Containers)
	}
	if proxy.Image != cfg.Image || *proxy.SecurityContext.RunAsUser != ProxyUID || !*proxy.SecurityContext.RunAsNonRoot {
		t.Fatalf("sidecar image %q, uid %d", proxy.Image, *proxy.SecurityContext.RunAsUser)
	}
	for _, want := range []string{"--workload=$(POD_NAMESPACE)/$(POD_NAME)", "--service-account=$(SERVICE_ACCOUNT)", "--service=web",
		"--bundle=/var/run/secrets/istio/root-cert.pem", "--status=:15020", "--label=app=web", "--label=version=v2",
		"--token-file=/var/run/secrets/tokens/istio-token", "--capture", "--inbound=port=8080,name=http"} {
		if !slices.Contains(proxy.Args, want) {
			t.Errorf("sidecar args %q lack %q", proxy.Args, want)
		}
	}
	mounts := map[string]string{}
	for _, m := range proxy.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts[volToken] != "/var/run/secrets/tokens" || mounts[volRootCert] != "/var/run/secrets/istio" {
		t.Errorf("sidecar mounts %v", mounts)
	}

	init := container(out, InitContainer, true)
	if init == nil {
		t.Fatal("no init container")
	}
	wantArgs := []string{"init", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15020,15021,15090"}
	if !slices.Equal(init.Args, wantArgs) {
		t.Errorf("init args\n got %q\nwant %q", init.Args, wantArgs)
	}
	caps := init.SecurityContext.Capabilities.Add
	if !slices.Contains(caps, "NET_ADMIN") || !slices.Contains(caps, "NET_RAW") || *init.SecurityContext.RunAsUser != 0 {
		t.Errorf("init security context %+v", init.SecurityContext)
	}

	var token, root bool
	for _, v := range out.Spec.Volumes {
		if v.Projected != nil {
			st := v.Projected.Sources[0].ServiceAccountToken
			token = v.Name == volToken && st.Audience == "istio-ca" && st.Path == "istio-token" && *st.ExpirationSeconds == 43200
		}
		if v.ConfigMap != nil {
			root = v.Name == volRootCert && v.ConfigMap.Name == "istio-ca-root-cert"
		}
	}
	if !token || !root {
		t.Errorf("volumes %+v: token %v, root cert %v", out.Spec.Volumes, token, root)
	}

	app := container(out, "web", false)
	for kind, p := range map[string]*corev1.Probe{"livez": app.LivenessProbe, "readyz": app.ReadinessProbe, "startupz": app.StartupProbe} {
		h := p.HTTPGet
		if h == nil || h.Path != "/app-health/web/"+kind || h.Port.IntValue() != StatusPort || h.Scheme != corev1.URISchemeHTTP || p.TCPSocket != nil {
			t.Errorf("%s probe not rewritten: %+v", kind, p.ProbeHandler)
		}
	}
	if app.LivenessProbe.PeriodSeconds != 7 || app.LivenessProbe.TimeoutSeconds != 3 {
		t.Errorf("probe timing lost: %+v", app.LivenessProbe)
	}
	probers, ok := envOf(proxy, "ISTIO_KUBE_APP_PROBERS")
	if !ok {
		t.Fatal("no ISTIO_KUBE_APP_PROBERS")
	}
	var got map[string]map[string]any
	if err := json.Unmarshal([]byte(probers), &got); err != nil {
		t.Fatal(err)
	}
	live, _ := json.Marshal(got["/app-health/web/livez"])
	if string(live) != `{"httpGet":{"httpHeaders":[{"name":"X-Probe","value":"1"}],"path":"/healthz","port":8080,"scheme":"HTTP"},"timeoutSeconds":3}` {
		t.Errorf("livez prober %s", live)
	}
	ready, _ := json.Marshal(got["/app-health/web/readyz"])
	if string(ready) != `{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTPS"},"timeoutSeconds":1}` {
		t.Errorf("readyz prober %s", ready)
	}
	startup, _ := json.Marshal(got["/app-health/web/startupz"])
	if string(startup) != `{"tcpSocket":{"port":8080},"timeoutSeconds":1}` {
		t.Errorf("startupz prober %s", startup)
	}

	if out.Labels[LabelTLSMode] != "istio" || out.Labels[LabelCanonicalName] != "web" || out.Labels[LabelCanonicalRev] != "v2" {
		t.Errorf("labels %v", out.Labels)
	}
	var status map[string]any
	if err := json.Unmarshal([]byte(out.Annotations[AnnotationStatus]), &status); err != nil {
		t.Fatalf("status annotation: %v", err)
	}
	if out.Annotations[AnnotationDefaultContainer] != "web" || out.Annotations[AnnotationInterceptionMode] != ModeRedirect {
		t.Errorf("annotations %v", out.Annotations)
	}
	if Skip(out) == "" {
		t.Error("an injected pod would be injected again")
	}
}

func TestInjectAnnotations(t *testing.T) {
	tests := []struct {
		name     string
		ann      map[string]string
		wantInit []string // args after "-i" when set
		err      string
	}{
		{name: "capture annotations", ann: map[string]string{
			AnnotationIncludeOutIPs: "10.0.0.0/8", AnnotationExcludeOutIPs: "10.96.0.1/32, 169.254.169.254/32",
			AnnotationIncludeInbound: "8080,9090", AnnotationExcludeInbound: "9090", AnnotationExcludeOutPorts: "5432"},
			wantInit: []string{"-i", "10.0.0.0/8", "-x", "10.96.0.1/32, 169.254.169.254/32", "-b", "8080,9090", "-d", "15020,15021,15090,9090", "-o", "5432"}},
		{name: "bad CIDR", ann: map[string]string{AnnotationExcludeOutIPs: "10.0.0.0/33"}, err: `traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0.0/33"`},
		{name: "bad port", ann: map[string]string{AnnotationIncludeInbound: "80,http"}, err: `traffic.sidecar.istio.io/includeInboundPorts: "80,http": port "http"`},
		{name: "star only where allowed", ann: map[string]string{AnnotationExcludeInbound: "*"}, err: "excludeInboundPorts"},
		{name: "bad mode", ann: map[string]string{AnnotationInterceptionMode: "TPROXY"}, err: `sidecar.istio.io/interceptionMode: "TPROXY"`},
		{name: "bad cpu", ann: map[string]string{AnnotationProxyCPU: "lots"}, err: `sidecar.istio.io/proxyCPU: "lots"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			p := webPod()
			p.Annotations = tc.ann
			out, err := cfg.Inject(p, "shop")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "pod shop/web-0") {
					t.Fatalf("error %v, want one naming the pod and containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			args := container(out, InitContainer, true).Args
			i := slices.Index(args, "-i")
			if !slices.Equal(args[i:], tc.wantInit) {
				t.Errorf("init args\n got %q\nwant %q", args[i:], tc.wantInit)
			}
		})
	}
}

func TestInjectModeNone(t *testing.T) {
	cfg := testConfig()
	p := webPod()
	p.Annotations = map[string]string{AnnotationInterceptionMode: ModeNone, AnnotationRewriteProbes: "false"}
	out, err := cfg.Inject(p, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Spec.InitContainers) != 0 {
		t.Errorf("mode NONE has init containers %v", out.Spec.InitContainers)
	}
	if v, _ := envOf(container(out, "web", false), "HTTP_PROXY"); v != "http://127.0.0.1:15080" {
		t.Errorf("app HTTP_PROXY %q", v)
	}
	proxy := container(out, ProxyContainer, false)
	if !slices.Contains(proxy.Args, "--http-proxy=127.0.0.1:15080") || slices.Contains(proxy.Args, "--capture") {
		t.Errorf("sidecar args %q", proxy.Args)
	}
	if _, ok := envOf(proxy, "ISTIO_KUBE_APP_PROBERS"); ok {
		t.Error("probes rewritten despite rewriteAppHTTPProbers=false")
	}
	if container(out, "web", false).LivenessProbe.HTTPGet.Port.StrVal != "http" {
		t.Error("liveness probe changed")
	}
}

func TestSkip(t *testing.T) {
	tests := []struct {
		name string
		edit func(*corev1.Pod)
		want string
	}{
		{name: "inject", edit: func(*corev1.Pod) {}},
		{name: "annotation false", edit: func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationInject: "false"} }, want: "annotation"},
		{name: "label false", edit: func(p *corev1.Pod) { p.Labels[AnnotationInject] = "false" }, want: "label"},
		{name: "annotation true", edit: func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationInject: "true"} }},
		{name: "host network", edit: func(p *corev1.Pod) { p.Spec.HostNetwork = true }, want: "hostNetwork"},
		{name: "has proxy", edit: func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: ProxyContainer})
		}, want: "already"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := webPod()
			tc.edit(p)
			got := Skip(p)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("Skip = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{InterceptionMode: "TPROXY", Revision: "Bad_Rev", IncludeIPRanges: "nope", ImagePullPolicy: "Sometimes"}
	err := c.Validate()
	for _, want := range []string{"image is required", "control plane", "trust domain", `interception mode "TPROXY"`, `revision "Bad_Rev"`, "token expiration", "include outbound IP ranges", `image pull policy "Sometimes"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	good := testConfig()
	if err := good.Validate(); err != nil {
		t.Errorf("defaults with an image: %v", err)
	}
}
