package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"palisade.dev/palisade/test/kubeapi"
)

// askCertificate calls CreateCertificate as a sidecar does: a CSR for
// spiffe://cluster.local/ns/NS/sa/SA and the token as bearer metadata.
// The CA is trusted by the bundle, nothing else.
func askCertificate(grpcAddr, bundlePEM, sa, token string) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(bundlePEM)) {
		return errors.New("bad bundle")
	}
	tc := &tls.Config{InsecureSkipVerify: true, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { //nolint:gosec // verified here
		var certs []*x509.Certificate
		for _, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs = append(certs, c)
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		return err
	}}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return err
	}
	defer conn.Close()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	u, _ := url.Parse("spiffe://cluster.local/ns/" + ns + "/sa/" + sa)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	resp, err := securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
		Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), ValidityDuration: 3600,
	})
	if err != nil {
		return err
	}
	id, err := leafURI(resp.GetCertChain()[0])
	if err != nil {
		return err
	}
	if id != u.String() {
		return fmt.Errorf("issued %s, asked %s", id, u)
	}
	return nil
}

func leafURI(chainPEM string) (string, error) {
	b, _ := pem.Decode([]byte(chainPEM))
	if b == nil {
		return "", errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	if len(c.URIs) != 1 {
		return "", fmt.Errorf("certificate has %d URI SANs", len(c.URIs))
	}
	return c.URIs[0].String(), nil
}

// expiredToken signs, with the API server's own service-account key, a
// token exactly like a bound one of pod but expired an hour ago: the
// signature and every claim check out, only the time does not.
func expiredToken(c *kubeapi.Cluster, podName string) (string, error) {
	ctx := context.Background()
	p, err := c.Client.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	sa, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, p.Spec.ServiceAccountName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Join(c.Dir, "sa.key"))
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(raw)
	if blk == nil {
		return "", errors.New("sa.key: no PEM")
	}
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims := map[string]any{
		"iss": c.Issuer, "sub": "system:serviceaccount:" + ns + ":" + sa.Name, "aud": []string{"istio-ca"},
		"iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"pod":            map[string]string{"name": p.Name, "uid": string(p.UID)},
			"serviceaccount": map[string]string{"name": sa.Name, "uid": string(sa.UID)},
		},
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}
