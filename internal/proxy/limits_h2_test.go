package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/telemetry"
)

// h2Client is one HTTP/2 connection over mTLS (ALPN h2) to a sidecar's
// inbound port, driven frame by frame.
type h2Client struct {
	t  *testing.T
	c  *tls.Conn
	fr *http2.Framer
}

func dialH2(t *testing.T, addr string, cert *tls.Certificate) *h2Client {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{*cert}, NextProtos: []string{"h2", "istio"}, // a calling sidecar's offer: PERMISSIVE terminates it
		InsecureSkipVerify: true, // the raw client checks no identity; the limits are under test
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	h := &h2Client{t: t, c: c, fr: fr}
	// The server's SETTINGS, acknowledged, so that it enforces its own.
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return h
		}
	}
}

func (h *h2Client) block(fields [][2]string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return b.Bytes()
}

// send opens stream id with one whole header block and no body.
func (h *h2Client) send(id uint32, fields [][2]string) {
	h.t.Helper()
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.block(fields), EndStream: true, EndHeaders: true}); err != nil {
		h.t.Fatal(err)
	}
}

// answer reads frames until stream id is answered (its status) or
// reset (refused); the connection's end is refused too.
func (h *h2Client) answer(id uint32) int {
	h.t.Helper()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return refused
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				var code int
				fmt.Sscan(f.PseudoValue("status"), &code) //nolint:errcheck
				return code
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return refused
			}
		case *http2.GoAwayFrame:
			return refused
		}
	}
}

// metric reads palisade_downstream_limit_exceeded_total for limit from
// the admin listener's /metrics, as Prometheus would.
func metric(t *testing.T, admin, limit string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	prefix := `palisade_downstream_limit_exceeded_total{limit="` + limit + `"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			var f float64
			fmt.Sscan(v, &f) //nolint:errcheck
			return f
		}
	}
	t.Fatalf("no series for limit %s in /metrics", limit)
	return 0
}

// TestHTTP2Limits trips each downstream limit over HTTP/2 on mTLS (ALPN
// h2) and reads its counter from the admin listener's /metrics: a header
// list over the size or count limit (431, which net/http's HTTP/2 server
// would otherwise answer itself, uncounted), a stream over the
// concurrent streams limit (reset), and a header block begun and never
// finished (the connection closed at the header timeout).
func TestHTTP2Limits(t *testing.T) {
	release := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok") //nolint:errcheck
	})}
	go app.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { app.Close() })
	var once bool
	releaseAll := func() {
		if !once {
			once = true
			close(release)
		}
	}
	t.Cleanup(releaseAll)

	m := newTestMesh(t)
	reg := prometheus.NewRegistry()
	lim, err := telemetry.NewLimits(reg)
	if err != nil {
		t.Fatal(err)
	}
	cert := m.ca.issue(t, catalogID)
	p := m.sidecarWith("productcatalog", "productcatalog-sa", cert, cert, proxy.Options{
		Inbound: []proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: ln.Addr().String()}},
		Limits:  proxy.Limits{MaxRequestHeadersKB: 4, MaxRequestHeaders: 10, MaxConcurrentStreams: 2, RequestHeadersTimeout: 300 * time.Millisecond},
	}, &proxy.Telemetry{Limits: lim})
	admin, err := proxy.StartAdmin("127.0.0.1:0", proxy.AdminSources{Registry: reg}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	addr := p.Options().Inbound[0].Listen
	client := m.ca.issue(t, frontendID)

	many := []string{}
	for i := range 11 {
		many = append(many, fmt.Sprintf("x-h%d", i), "v")
	}
	tests := []struct {
		name  string
		run   func(h *h2Client) int
		want  int
		limit string
	}{
		{name: "header list under both limits", want: 200, run: func(h *h2Client) int {
			h.send(1, h2get("/a", "x-a", strings.Repeat("a", 3000)))
			return h.answer(1)
		}},
		{name: "header list over the size limit", want: 431, limit: telemetry.LimitHeaderSize, run: func(h *h2Client) int {
			h.send(1, h2get("/a", "x-a", strings.Repeat("a", 5000)))
			return h.answer(1)
		}},
		{name: "headers over the count limit", want: 431, limit: telemetry.LimitHeaderCount, run: func(h *h2Client) int {
			h.send(1, h2get("/a", many...))
			return h.answer(1)
		}},
		{name: "a stream over the concurrent streams limit", want: refused, limit: telemetry.LimitConcurrentStreams, run: func(h *h2Client) int {
			h.send(1, h2get("/hold"))
			h.send(3, h2get("/hold"))
			h.send(5, h2get("/a"))
			code := h.answer(5)
			releaseAll()
			if got := h.answer(1); got != 200 {
				t.Errorf("a held stream under the limit got %d, want 200", got)
			}
			return code
		}},
		{name: "a header block never finished", want: refused, limit: telemetry.LimitHeaderTimeout, run: func(h *h2Client) int {
			frag := h.block(h2get("/a"))
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: frag[:len(frag)/2], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			code := h.answer(1)
			if d := time.Since(t0); d > 3*time.Second {
				t.Errorf("the connection ended after %v, want about 300ms", d)
			}
			return code
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := 0.0
			if tc.limit != "" {
				before = metric(t, admin.Addr(), tc.limit)
			}
			if got := tc.run(dialH2(t, addr, client)); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
			if tc.limit != "" {
				if got := metric(t, admin.Addr(), tc.limit) - before; got != 1 {
					t.Errorf("%s counted %v times, want 1", tc.limit, got)
				}
			}
		})
	}
}
