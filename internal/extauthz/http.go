package extauthz

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// maxAuthzBody bounds how much of an HTTP authorizer's answer is read.
const maxAuthzBody = 1 << 20

// headersToRemoveHeader lists, in an HTTP authorizer's 200 answer, the
// request headers to drop before forwarding upstream.
const headersToRemoveHeader = "x-envoy-auth-headers-to-remove"

// httpTransport speaks Envoy's raw HTTP ext_authz protocol: the request's
// method, path (after pathPrefix), Host and the allowed headers go to the
// authorizer; a 200 allows, a 5xx is a failure, anything else denies.
type httpTransport struct {
	cfg    *config
	scheme string
	client *http.Client
}

func newHTTPTransport(cfg *config, tlsCfg *tls.Config) *httpTransport {
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &httpTransport{cfg: cfg, scheme: scheme, client: &http.Client{
		Transport: tr,
		// An authorizer's redirect is an answer for the client, not for us.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (h *httpTransport) close() error {
	h.client.CloseIdleConnections()
	return nil
}

func (h *httpTransport) check(ctx context.Context, cr *authv3.CheckRequest) (*Result, error) {
	req, err := h.newRequest(ctx, cr)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http check: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthzBody))
	if err != nil {
		return nil, fmt.Errorf("http check: read answer: %w", err)
	}
	if resp.StatusCode >= 500 && resp.StatusCode <= 599 {
		return nil, fmt.Errorf("http check: authorizer answered %d", resp.StatusCode)
	}
	if resp.StatusCode == http.StatusOK {
		return h.allowed(resp.Header), nil
	}
	return h.denied(resp, body), nil
}

// newRequest turns the CheckRequest into the authorization request, as
// Envoy's RawHttpClientImpl does.
func (h *httpTransport) newRequest(ctx context.Context, cr *authv3.CheckRequest) (*http.Request, error) {
	hr := cr.GetAttributes().GetRequest().GetHttp()
	headers := hr.GetHeaders()
	method := headers[":method"]
	if method == "" {
		method = http.MethodGet
	}
	path := h.cfg.pathPrefix + headers[":path"]
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	body := hr.GetRawBody()
	if body == nil && hr.GetBody() != "" {
		body = []byte(hr.GetBody())
	}
	req, err := http.NewRequestWithContext(ctx, method, h.scheme+"://"+h.cfg.address+"/", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("http check: build request: %w", err)
	}
	// The path goes on the wire exactly as the client sent it. An opaque
	// "//..." would read as a host, so such paths are parsed instead.
	if strings.HasPrefix(path, "//") {
		ru, err := url.ParseRequestURI(path)
		if err != nil {
			return nil, fmt.Errorf("http check: path %q: %w", path, err)
		}
		req.URL.Path, req.URL.RawPath, req.URL.RawQuery = ru.Path, ru.RawPath, ru.RawQuery
	} else {
		req.URL.Opaque = path
	}
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body = http.NoBody
	}
	req.Host = headers[":authority"]
	for k, v := range headers {
		if strings.HasPrefix(k, ":") || k == "content-length" || !h.cfg.requestHeaders.matches(k) {
			continue
		}
		req.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	for _, kv := range h.cfg.additionalHeaders {
		if strings.EqualFold(kv[0], "host") {
			req.Host = kv[1]
			continue
		}
		req.Header.Set(kv[0], kv[1])
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = nil // send none rather than Go's default
	}
	return req, nil
}

// allowed maps a 200 answer: headersToUpstreamOnAllow are set on the
// upstream request, headersToDownstreamOnAllow added to the response, and
// x-envoy-auth-headers-to-remove removed from the upstream request.
func (h *httpTransport) allowed(hdr http.Header) *Result {
	res := &Result{Allowed: true, Reason: ReasonAllowed}
	for _, v := range hdr.Values(headersToRemoveHeader) {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				res.UpstreamHeadersToRemove = append(res.UpstreamHeadersToRemove, strings.ToLower(name))
			}
		}
	}
	for _, name := range sortedKeys(hdr) {
		if strings.EqualFold(name, headersToRemoveHeader) {
			continue
		}
		for _, v := range hdr[name] {
			if h.cfg.upstreamOnAllow.matches(name) {
				res.UpstreamHeaders = append(res.UpstreamHeaders, HeaderMutation{Name: name, Value: v, Action: HeaderSet})
			}
			if h.cfg.downstreamOnAllow.matches(name) {
				res.ResponseHeaders = append(res.ResponseHeaders, HeaderMutation{Name: name, Value: v, Action: HeaderAdd})
			}
		}
	}
	return res
}

// denied maps any other answer: its status and body go downstream with the
// headers headersToDownstreamOnDeny lets through (all but Host when unset).
// Content-Length and hop-by-hop headers are left to whoever writes the reply.
func (h *httpTransport) denied(resp *http.Response, body []byte) *Result {
	res := &Result{Status: denialStatus(resp.StatusCode, http.StatusForbidden), Body: body, Reason: ReasonDenied, Headers: http.Header{}}
	for name, values := range resp.Header {
		switch strings.ToLower(name) {
		case "host", "content-length", "connection", "transfer-encoding", "keep-alive", headersToRemoveHeader:
			continue
		}
		if h.cfg.downstreamDenyAll || h.cfg.downstreamOnDeny.matches(name) {
			res.Headers[name] = append([]string(nil), values...)
		}
	}
	return res
}
