package telemetry

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func BenchmarkAccessLog(b *testing.B) {
	l := NewAccessLog(io.Discard)
	e := httpEntry()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Log(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAccessLogParallel(b *testing.B) {
	l := NewAccessLog(io.Discard)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := httpEntry()
		for pb.Next() {
			if err := l.Log(e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkObserveHTTP(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := httpEntry()
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(e)
	}
}

func BenchmarkObserveTCP(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := &Entry{Protocol: ProtocolTCP, Direction: Inbound, MTLS: true, BytesSent: 10, BytesReceived: 10}
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveTCPOpen(e)
		m.ObserveTCPClose(e)
	}
}
