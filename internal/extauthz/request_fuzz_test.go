package extauthz

import (
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// FuzzBuildCheckRequest: whatever a client sends, the CheckRequest must
// marshal (proto strings must be valid UTF-8), pseudo-headers must come from
// the request line, and the client cannot forge the partial-body header.
func FuzzBuildCheckRequest(f *testing.F) {
	f.Add("GET", "/products?id=1", "frontend:9000", "Authorization", "Bearer x", "id=1", "spiffe://cluster.local/ns/a/sa/b")
	f.Add("POST", "/\xff", "h\xfe", "X-Envoy-Auth-Partial-Body", "true", "\xff\xfe", "spiffe://\xff")
	f.Add("", "", "", ":path", "/evil", "", "")
	body := &bodyConfig{maxBytes: 8, allowPartial: true}
	cfgs := []*config{{kind: kindGRPC}, {kind: kindGRPC, body: body}, {kind: kindHTTP, body: body}}
	now := func() time.Time { return time.Unix(0, 0) }
	f.Fuzz(func(t *testing.T, method, path, host, hname, hvalue, reqBody, principal string) {
		for _, cfg := range cfgs {
			in := &CheckInput{
				Method: method, Path: path, Host: host, Scheme: "http",
				Headers:              http.Header{hname: {hvalue}},
				Body:                 []byte(reqBody),
				DestinationPrincipal: principal,
				ContextExtensions:    map[string]string{hname: hvalue},
			}
			req := buildCheckRequest(cfg, in, now)
			if _, err := proto.Marshal(req); err != nil {
				t.Fatalf("marshal: %v", err)
			}
			h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
			if h[":path"] != utf8(path) || h[":method"] != utf8(method) || h[":authority"] != utf8(host) {
				t.Fatalf("pseudo-headers %q %q %q overridden", h[":method"], h[":path"], h[":authority"])
			}
			if cfg.body == nil {
				if _, ok := h[partialBodyHeader]; ok {
					t.Fatalf("%s sent without a body setting", partialBodyHeader)
				}
			} else if want := len(reqBody) > body.maxBytes; h[partialBodyHeader] != map[bool]string{true: "true", false: "false"}[want] {
				t.Fatalf("%s = %q for a %d-byte body", partialBodyHeader, h[partialBodyHeader], len(reqBody))
			}
		}
	})
}
