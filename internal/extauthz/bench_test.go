package extauthz

import (
	"context"
	"sort"
	"testing"
	"time"
)

// BenchmarkCheck measures one Check round trip (build the CheckRequest, gRPC
// call, map the answer): against the real OPA Envoy plugin evaluating the
// workshop policy when tools/opa/build.sh has run, and against an in-process
// gRPC server that always allows. Run with -benchmem; p50 and p99 latencies
// are reported as metrics.
func BenchmarkCheck(b *testing.B) {
	b.Run("opa-envoy-plugin", func(b *testing.B) {
		addr := startOPA(b, workshopPolicy, workshopPath)
		in := workshopInput(frontendSA, "frontend.workshop.svc.cluster.local:9000", "GET", "/", workshopTokens(b)["alice"])
		benchCheck(b, addr, in, true)
	})
	b.Run("in-process-grpc", func(b *testing.B) {
		s := startAuthServer(b, nil)
		in := workshopInput(frontendSA, "frontend.workshop.svc.cluster.local:9000", "GET", "/", "token")
		benchCheck(b, s.addr, in, true)
	})
}

func benchCheck(b *testing.B, addr string, in *CheckInput, wantAllowed bool) {
	c := newTestClient(b, opaProvider(addr))
	ctx := context.Background()
	// Warm the connection up outside the measurement.
	if res, err := c.Check(ctx, in); err != nil || res.Allowed != wantAllowed || res.Err != nil {
		b.Fatalf("warm-up Check = %+v, %v", res, err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := c.Check(ctx, in)
		lat = append(lat, time.Since(start))
		if err != nil || res.Allowed != wantAllowed {
			b.Fatalf("Check = %+v, %v", res, err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
