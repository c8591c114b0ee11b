package extauthz

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// CheckInput is what the proxy knows about one request when it asks the
// authorizer.
type CheckInput struct {
	// SourceAddress is the downstream peer; DestinationAddress the local
	// address the request arrived on.
	SourceAddress, DestinationAddress netip.AddrPort
	// SourcePrincipal and DestinationPrincipal are the SPIFFE IDs
	// (spiffe://...) of the peer's and the local certificate, as Envoy takes
	// them from the certificates' URI SAN. Empty on plaintext.
	SourcePrincipal, DestinationPrincipal string
	// RequestTime is when the first byte of the request arrived; zero means
	// now (by the client's clock).
	RequestTime time.Time
	// RequestID is attributes.request.http.id; empty means a random stream id,
	// as Envoy sends.
	RequestID string
	// Method, Path (with the query), Host (the :authority), Scheme ("http" or
	// "https") and Protocol ("HTTP/1.1", "HTTP/2") of the request.
	Method, Path, Host, Scheme, Protocol string
	// Headers are the request headers as received; Host is not among them.
	Headers http.Header
	// Body is the buffered request body, used only when the provider sets
	// includeRequestBodyInCheck. Buffer at most BodyLimit()+1 bytes: anything
	// beyond maxRequestBytes is cut (allowPartialMessage) or answered 413.
	// Nil means the request had no body.
	Body []byte
	// Size is the number of request bytes received so far (-1 if unknown).
	Size int64
	// ContextExtensions are passed to the authorizer unchanged.
	ContextExtensions map[string]string
}

// HeaderAction says how a header mutation applies to an existing header.
type HeaderAction int

const (
	// HeaderSet overwrites the header, or adds it if absent.
	HeaderSet HeaderAction = iota
	// HeaderAdd adds another value for the header.
	HeaderAdd
	// HeaderAppend appends the value to the existing one, comma-separated, or
	// adds the header if absent.
	HeaderAppend
	// HeaderAddIfAbsent adds the header only if it is absent.
	HeaderAddIfAbsent
	// HeaderOverwriteIfExists overwrites the header only if it is present.
	HeaderOverwriteIfExists
)

// HeaderMutation is one header change the authorizer asked for.
type HeaderMutation struct {
	Name, Value string
	Action      HeaderAction
}

// QueryParam is one query parameter to set on the upstream request.
type QueryParam struct{ Key, Value string }

// Result is the authorizer's decision for one request, with failOpen and
// statusOnError already applied.
type Result struct {
	// Allowed says whether the request goes on to the upstream.
	Allowed bool

	// On allow: mutations of the upstream request.
	UpstreamHeaders         []HeaderMutation
	UpstreamHeadersToRemove []string
	QueryParamsToSet        []QueryParam
	QueryParamsToRemove     []string
	// On allow: headers to add to the response sent downstream.
	ResponseHeaders []HeaderMutation

	// On deny: the local reply to send downstream.
	Status  int
	Body    []byte
	Headers http.Header

	// Reason explains the decision for logs, never for the client.
	Reason string
	// Err is the failure to reach the authorizer behind an error decision
	// (fail open or statusOnError), for logs.
	Err error
}

// Reasons a Result carries.
const (
	ReasonAllowed    = "allowed by ext_authz"
	ReasonDenied     = "denied by ext_authz"
	ReasonFailOpen   = "ext_authz error, fail open"
	ReasonFailClosed = "ext_authz error, fail closed"
	ReasonBodyTooBig = "request body exceeds maxRequestBytes"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	log *slog.Logger
	now func() time.Time
	tls *tls.Config
}

// WithLogger sets the logger for authorizer failures and decisions (debug).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock that stamps RequestTime when the input leaves it zero.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithTLS makes the client reach the authorizer over TLS (mTLS when cfg holds a
// client certificate). Without it the connection is plaintext.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// transport sends one CheckRequest. An error means the authorizer could not
// give an answer (unreachable, timeout, HTTP 5xx), not a denial.
type transport interface {
	check(ctx context.Context, req *authv3.CheckRequest) (*Result, error)
	close() error
}

// Client asks one ext_authz provider. It is safe for concurrent use.
type Client struct {
	cfg *config
	t   transport
	log *slog.Logger
	now func() time.Time
}

// New validates p and returns a client for it. Connections are made lazily
// and pooled; New does not dial.
func New(p Provider, opts ...Option) (*Client, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := compile(p)
	if err != nil {
		return nil, fmt.Errorf("extauthz: new: %w", err)
	}
	var t transport
	switch cfg.kind {
	case kindGRPC:
		t, err = newGRPCTransport(cfg, o.tls)
	case kindHTTP:
		t = newHTTPTransport(cfg, o.tls)
	}
	if err != nil {
		return nil, fmt.Errorf("extauthz: new: %w", err)
	}
	return &Client{cfg: cfg, t: t, log: o.log.With("provider", cfg.name), now: o.now}, nil
}

// BodyLimit returns maxRequestBytes and true when the provider wants the
// request body in the check; the caller buffers up to limit+1 bytes.
func (c *Client) BodyLimit() (limit int, include bool) {
	if c.cfg.body == nil {
		return 0, false
	}
	return c.cfg.body.maxBytes, true
}

// Check asks the authorizer about one request. It returns an error only when
// in is unusable or ctx ends before a decision; every authorizer failure
// becomes a Result per failOpen and statusOnError.
func (c *Client) Check(ctx context.Context, in *CheckInput) (*Result, error) {
	if in == nil {
		return nil, errors.New("extauthz: check: nil input")
	}
	if b := c.cfg.body; b != nil && len(in.Body) > b.maxBytes && !b.allowPartial {
		// Envoy answers 413 before asking, whatever failOpen says.
		return &Result{Status: http.StatusRequestEntityTooLarge, Reason: ReasonBodyTooBig}, nil
	}
	req := buildCheckRequest(c.cfg, in, c.now)

	tctx, cancel := ctx, context.CancelFunc(func() {})
	if c.cfg.timeout > 0 {
		tctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
	}
	res, err := c.t.check(tctx, req)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("extauthz: check: %w", ctx.Err())
		}
		return c.onError(err), nil
	}
	c.log.Debug("ext_authz decision", "allowed", res.Allowed, "status", res.Status,
		"method", in.Method, "host", in.Host)
	return res, nil
}

// onError applies failOpen and statusOnError to a failed check.
func (c *Client) onError(err error) *Result {
	if c.cfg.failOpen {
		c.log.Warn("ext_authz check failed, allowing (failOpen)", "error", err)
		return &Result{Allowed: true, Reason: ReasonFailOpen, Err: err}
	}
	res := &Result{Status: c.cfg.statusOnError, Reason: ReasonFailClosed, Err: err}
	var ae *authorizerError
	if errors.As(err, &ae) {
		res.Status = denialStatus(ae.status, res.Status)
		res.Body, res.Headers = ae.body, ae.headers
	}
	c.log.Warn("ext_authz check failed, denying", "error", err, "status", res.Status)
	return res
}

// denialStatus is the status a denial is answered with: the
// authorizer's when it is a final status (200-599), else fallback. An
// informational status would not end the exchange, and net/http cannot
// write one past 999.
func denialStatus(code, fallback int) int {
	if code < 200 || code > 599 {
		return fallback
	}
	return code
}

// Close releases the pooled connections.
func (c *Client) Close() error {
	if err := c.t.close(); err != nil {
		return fmt.Errorf("extauthz: close: %w", err)
	}
	return nil
}
