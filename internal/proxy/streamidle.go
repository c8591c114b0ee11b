package proxy

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"palisade.dev/palisade/internal/telemetry"
)

// streamIdle is Envoy's stream_idle_timeout for one forwarded request:
// when neither the request body nor the response moves for the limit's
// length (the wait for the app's answer included), the request is
// cancelled and answered 408 "stream timeout", flag SI, if no answer has
// begun, else cut.
type streamIdle struct {
	timer *time.Timer
	d     time.Duration
	fired atomic.Bool
}

type streamIdleKey struct{}

// watchStream starts the clock for r; stop ends it. An upgraded stream
// (WebSocket) becomes a tunnel the clock would not see move: it is not
// timed, and w and r come back as they are.
func (p *Proxy) watchStream(w http.ResponseWriter, r *http.Request) (_ http.ResponseWriter, _ *http.Request, stop func()) {
	if r.Header.Get("Upgrade") != "" {
		return w, r, func() {}
	}
	s := &streamIdle{d: p.opts.Limits.StreamIdleTimeout}
	ctx, cancel := context.WithCancel(context.WithValue(r.Context(), streamIdleKey{}, s))
	path := r.URL.Path
	s.timer = time.AfterFunc(s.d, func() {
		s.fired.Store(true)
		p.tel.exceeded(telemetry.LimitStreamIdle)
		p.log.Info("request cut", "reason", "stream idle timeout", "timeout", s.d, "path", path)
		cancel()
	})
	r = r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleBody{ReadCloser: r.Body, s: s}
	}
	return &idleWriter{ResponseWriter: w, s: s}, r, func() { s.timer.Stop(); cancel() }
}

func (s *streamIdle) touch() { s.timer.Reset(s.d) }

// idledOut reports whether r was cancelled by its stream idle timeout.
func idledOut(r *http.Request) bool {
	s, ok := r.Context().Value(streamIdleKey{}).(*streamIdle)
	return ok && s.fired.Load()
}

type idleBody struct {
	io.ReadCloser
	s *streamIdle
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.s.touch()
	}
	return n, err
}

type idleWriter struct {
	http.ResponseWriter
	s *streamIdle
}

func (w *idleWriter) Write(b []byte) (int, error) {
	w.s.touch()
	return w.ResponseWriter.Write(b)
}

func (w *idleWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
