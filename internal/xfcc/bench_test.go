package xfcc

import (
	"crypto/x509"
	"testing"
)

func BenchmarkCurrent(b *testing.B) {
	server := testCert(b, "", []string{pcID}, nil)
	client := testCert(b, "", []string{feID}, nil)
	peers := []*x509.Certificate{client}
	b.ReportAllocs()
	for b.Loop() {
		_ = Current(server, peers, IstioSidecar)
	}
}

func BenchmarkForwardAppend(b *testing.B) {
	const in = "By=spiffe://cluster.local/ns/istio-system/sa/gw;Hash=aa;Subject=\"\";URI=spiffe://cluster.local/ns/x/sa/y"
	cur := "By=" + pcID + ";Hash=" + lyftHash + ";Subject=\"\";URI=" + feID
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Forward(AppendForward, in, true, cur)
	}
}

func BenchmarkParse(b *testing.B) {
	in := "By=" + pcID + ";Hash=" + lyftHash + ";Subject=\"\";URI=" + feID
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}
