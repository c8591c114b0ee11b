package dnsproxy

import (
	"testing"

	"github.com/miekg/dns"
)

// Any query a workload can send is answered or left to forward, never
// a panic; an answer is for the question asked.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"productcatalog.", dns.TypeA},
		{"productcatalog.workshop.workshop.svc.cluster.local.", dns.TypeA},
		{"api.payments.example.", dns.TypeAAAA},
		{"example.org.", dns.TypeMX},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := &Server{cfg: Config{Search: []string{"workshop.svc.cluster.local", "svc.cluster.local"}, Names: func() Names { return meshNames }}}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		resp := s.answer(req)
		if resp == nil {
			return
		}
		if resp.Id != req.Id || len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
			t.Fatalf("answer %v for question %v", resp, req.Question)
		}
		resp.Truncate(udpSize(req))
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
	})
}
