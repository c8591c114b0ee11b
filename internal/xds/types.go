package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Type URLs of the resources pushed to proxies.
var (
	TypeAuthorizationPolicy   = typeURL(&securityv1beta1.AuthorizationPolicy{})
	TypePeerAuthentication    = typeURL(&securityv1beta1.PeerAuthentication{})
	TypeRequestAuthentication = typeURL(&securityv1beta1.RequestAuthentication{})
	TypeDestinationRule       = typeURL(&networkingv1alpha3.DestinationRule{})
	TypeServiceEntry          = typeURL(&networkingv1alpha3.ServiceEntry{})
	TypeWorkloadEntry         = typeURL(&networkingv1alpha3.WorkloadEntry{})
	TypeGateway               = typeURL(&networkingv1alpha3.Gateway{})
	TypeVirtualService        = typeURL(&networkingv1alpha3.VirtualService{})
	TypeMeshConfig            = typeURL(&meshv1alpha1.MeshConfig{})
	TypeSecret                = typeURL(&tlsv3.Secret{})
)

// AllTypes lists every type a proxy subscribes to, in the order a server
// sends them on a new stream: the trust bundle and mesh config first, so
// that policies arrive to a proxy that can already compile them.
var AllTypes = []string{
	TypeSecret, TypeMeshConfig, TypeWorkloadEntry, TypeServiceEntry, TypeDestinationRule,
	TypePeerAuthentication, TypeRequestAuthentication, TypeAuthorizationPolicy,
	TypeGateway, TypeVirtualService,
}

// Well-known resource names.
const (
	// RootCAName is the Secret holding the trust bundle (Envoy's and
	// Istio's name for it).
	RootCAName = "ROOTCA"
	// MeshName is the single MeshConfig resource.
	MeshName = "mesh"
	// SelfName is the WorkloadEntry describing the proxy's own workload.
	SelfName = "self"
)

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// Resource is one named, versioned resource.
type Resource struct {
	Name    string
	Version string
	Any     *anypb.Any
}

// NewResource wraps m as a named resource whose version is the hash of its
// deterministic encoding.
func NewResource(name string, m proto.Message) (*Resource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("xds: marshal %s: %w", name, err)
	}
	sum := sha256.Sum256(b)
	return &Resource{
		Name:    name,
		Version: hex.EncodeToString(sum[:8]),
		Any:     &anypb.Any{TypeUrl: typeURL(m), Value: b},
	}, nil
}

// BundleSecret wraps a PEM trust bundle as Envoy's SDS validation context.
func BundleSecret(bundlePEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: RootCAName,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: bundlePEM}},
		}},
	}
}

// BundlePEM reads the PEM bundle back out of a Secret, checking it holds
// at least one certificate.
func BundlePEM(s *tlsv3.Secret) ([]byte, error) {
	b := s.GetValidationContext().GetTrustedCa().GetInlineBytes()
	if blk, _ := pem.Decode(b); blk == nil {
		return nil, fmt.Errorf("xds: secret %s: no certificate in trust bundle", s.GetName())
	}
	return b, nil
}
