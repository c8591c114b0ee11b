package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/proxy"
)

// realisticYAML is a mesh of 100 services in 10 namespaces with 100
// AuthorizationPolicies (10 select the compiled workload), a
// RequestAuthentication with inline JWKS, mesh-wide STRICT mTLS and a few
// DestinationRules.
func realisticYAML() string {
	var b strings.Builder
	b.WriteString(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: ns-0}
spec:
  selector: {matchLabels: {app: svc-0}}
  jwtRules:
  - issuer: https://issuer.example
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","kid":"k","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
`)
	for i := range 100 {
		ns := fmt.Sprintf("ns-%d", i%10)
		fmt.Fprintf(&b, `---
apiVersion: palisade.dev/v1alpha1
kind: Workload
metadata: {name: svc-%d, namespace: %s, labels: {app: svc-%d}}
spec:
  serviceAccount: svc-%d
  ports: [{name: http, number: 8080, protocol: HTTP}]
  command: app
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-%d, namespace: ns-0}
spec:
  selector: {matchLabels: {app: svc-%d}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/%s/sa/svc-%d"]}}]
    to: [{operation: {methods: [GET, POST], paths: ["/api/v%d/*", "/items/{*}"]}}]
    when: [{key: "request.headers[x-tenant]", values: ["t-%d"]}]
`, i, ns, i, i, i, i%10, ns, i, i%3, i)
	}
	for i := range 5 {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr-%d, namespace: ns-%d}
spec:
  host: svc-%d
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
`, i, i, i)
	}
	b.WriteString(`---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
`)
	for i := range 10 {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns-%d}\n", i)
	}
	return b.String()
}

// BenchmarkCompile compiles what the control plane pushes to one sidecar
// (the trust bundle, mesh config, 100 services, its policies) into the
// proxy's immutable config, as every push does.
func BenchmarkCompile(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "resources.yaml"), []byte(realisticYAML()), 0o644); err != nil {
		b.Fatal(err)
	}
	snap, err := config.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	ws := controlplane.ConfigRegistry{}.Workloads(snap)
	var self *controlplane.Workload
	for i, w := range ws {
		w.Inbound = map[uint32]string{8080: fmt.Sprintf("127.0.0.%d:15006", i+1)}
		if w.Key.Name == "svc-0" {
			self = w
		}
	}
	in := &controlplane.Input{Snapshot: snap, Services: controlplane.BuildServices(snap, ws), Bundle: selfSignedPEM(b)}
	set, err := controlplane.Generate(in, controlplane.Proxy{Workload: self})
	if err != nil {
		b.Fatal(err)
	}
	res := proxy.Resources{}
	n := 0
	for t, rs := range set {
		res[t] = map[string]proto.Message{}
		for name, r := range rs.ByName {
			m, err := r.Any.UnmarshalNew()
			if err != nil {
				b.Fatal(err)
			}
			res[t][name] = m
			n++
		}
	}
	cc := &proxy.Compiler{
		Self: proxy.Self{Ref: self.Ref(), ServiceAccount: self.ServiceAccount},
		Keys: jwt.NewKeyStore(jwt.KeyStoreOptions{Logger: slog.New(slog.DiscardHandler)}),
	}
	if _, err := cc.Compile(res); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cc.Compile(res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "resources")
}

func selfSignedPEM(b *testing.B) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	t := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, t, t, &k.PublicKey, k)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
