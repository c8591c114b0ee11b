package extauthz

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// grpcTransport speaks envoy.service.auth.v3.Authorization over one
// multiplexed connection.
type grpcTransport struct {
	conn   *grpc.ClientConn
	client authv3.AuthorizationClient
}

func newGRPCTransport(cfg *config, tlsCfg *tls.Config) (*grpcTransport, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// Come back quickly once an authorizer that was down is up again.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if tlsCfg == nil {
		// With TLS the authority must match the server's name; in plaintext
		// send the one Istio's Envoy sends.
		opts = append(opts, grpc.WithAuthority(cfg.authority))
	}
	conn, err := grpc.NewClient("passthrough:///"+cfg.address, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpc client for %s: %w", cfg.address, err)
	}
	return &grpcTransport{conn: conn, client: authv3.NewAuthorizationClient(conn)}, nil
}

func (g *grpcTransport) check(ctx context.Context, req *authv3.CheckRequest) (*Result, error) {
	resp, err := g.client.Check(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("grpc check: %w", err)
	}
	return fromCheckResponse(resp)
}

func (g *grpcTransport) close() error { return g.conn.Close() }

// authorizerError is an answer the authorizer marked as its own failure
// (CheckResponse.error_response). It follows failOpen; when the request is
// denied, the reply's status (if set), body and headers go downstream.
type authorizerError struct {
	grpcCode int32
	status   int
	body     []byte
	headers  http.Header
}

func (e *authorizerError) Error() string {
	return fmt.Sprintf("authorizer reported an error (grpc status %d)", e.grpcCode)
}

// fromCheckResponse maps a CheckResponse as Envoy's GrpcClientImpl does: OK
// status allows, an error_response is a failure, anything else denies (403
// unless the authorizer says otherwise).
func fromCheckResponse(resp *authv3.CheckResponse) (*Result, error) {
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		res := &Result{Allowed: true, Reason: ReasonAllowed}
		ok := resp.GetOkResponse()
		res.UpstreamHeaders = mutations(ok.GetHeaders(), false)
		res.ResponseHeaders = mutations(ok.GetResponseHeadersToAdd(), true)
		res.UpstreamHeadersToRemove = ok.GetHeadersToRemove()
		for _, q := range ok.GetQueryParametersToSet() {
			res.QueryParamsToSet = append(res.QueryParamsToSet, QueryParam{Key: q.GetKey(), Value: q.GetValue()})
		}
		res.QueryParamsToRemove = ok.GetQueryParametersToRemove()
		return res, nil
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, &authorizerError{
			grpcCode: resp.GetStatus().GetCode(),
			status:   int(e.GetStatus().GetCode()),
			body:     []byte(e.GetBody()),
			headers:  localReplyHeaders(e.GetHeaders()),
		}
	}
	res := &Result{Status: http.StatusForbidden, Reason: ReasonDenied}
	if d := resp.GetDeniedResponse(); d != nil {
		res.Status = denialStatus(int(d.GetStatus().GetCode()), http.StatusForbidden)
		res.Body = []byte(d.GetBody())
		res.Headers = localReplyHeaders(d.GetHeaders())
	}
	return res, nil
}

// mutations converts HeaderValueOptions as Envoy does: the deprecated append
// flag wins when set; otherwise append_action decides.
func mutations(opts []*corev3.HeaderValueOption, response bool) []HeaderMutation {
	if len(opts) == 0 {
		return nil
	}
	out := make([]HeaderMutation, 0, len(opts))
	for _, o := range opts {
		out = append(out, HeaderMutation{
			Name:   o.GetHeader().GetKey(),
			Value:  headerValue(o.GetHeader()),
			Action: mutationAction(o, response),
		})
	}
	return out
}

func mutationAction(o *corev3.HeaderValueOption, response bool) HeaderAction {
	//lint:ignore SA1019 authorizers still send the deprecated append flag, and Envoy honours it
	if o.GetAppend() != nil {
		switch {
		case o.GetAppend().GetValue() && response: //lint:ignore SA1019 as above
			return HeaderAdd
		case o.GetAppend().GetValue(): //lint:ignore SA1019 as above
			return HeaderAppend
		default:
			return HeaderSet
		}
	}
	switch o.GetAppendAction() {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		return HeaderAdd
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		return HeaderAddIfAbsent
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		return HeaderOverwriteIfExists
	default:
		return HeaderSet
	}
}

func headerValue(h *corev3.HeaderValue) string {
	if h.GetValue() == "" && len(h.GetRawValue()) > 0 {
		return string(h.GetRawValue())
	}
	return h.GetValue()
}

// localReplyHeaders turns a denied response's headers into the headers of
// the local reply.
func localReplyHeaders(opts []*corev3.HeaderValueOption) http.Header {
	if len(opts) == 0 {
		return nil
	}
	h := make(http.Header, len(opts))
	applyMutations(h, mutations(opts, true))
	return h
}
