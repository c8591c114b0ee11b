package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzRequestTarget sends a request target, as raw HTTP/1.1 or as an
// HTTP/2 :path, through the sidecar and the gateway to an app: a
// request the app receives must arrive with the very target
// authorization saw (the path in the access log), or not at all.
func FuzzRequestTarget(f *testing.F) {
	for _, tc := range requestForms {
		for _, fields := range tc.h2 {
			if fields[0] == ":path" {
				f.Add(fields[1], false)
				f.Add(fields[1], true)
			}
		}
	}
	for _, s := range []string{"/a/%2e%2E/b", "/a/.%2e/b", `/a\%2e.\b`, "/a;b/../c", "/%7e%41%zz", "/a?b#c", "//x/../y", "/a%2F..%2Fb", "/a/./b/.", "/\xc3\x28", "/a|b{c}", "/a?%00"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	fm := newFormMeshWith(f, "")
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, target string, h2 bool) {
		if strings.ContainsAny(target, "\r\n") || len(target) > 4096 {
			t.Skip("a CR or LF writes another request line or header; over-long targets are the limits' test")
		}
		// What the mesh kept of earlier inputs is dropped, so that an
		// iteration costs the same in the millionth run as in the first
		// (the whole access log was decoded again every time before).
		fm.app.take()
		for _, log := range fm.accesses {
			log.take()
		}
		var logged strings.Builder
		for _, addr := range []string{fm.sidecar, fm.gateway} {
			id := fmt.Sprintf("fuzz-%d", n.Add(1))
			if h2 {
				sendH2(t, addr, h2get(target, "x-request-id", id))
			} else {
				sendH1(t, addr, "GET "+target+" HTTP/1.1\r\nHost: shop.example.com\r\nX-Request-Id: "+id+"\r\nConnection: close\r\n\r\n")
			}
			fm.app.mu.Lock()
			got, reached := fm.app.byID[id]
			delete(fm.app.byID, id)
			fm.app.mu.Unlock()
			if !reached {
				continue
			}
			// The sidecar's own record: the last hop before the app.
			var seen string
			eventually(t, "the access log records "+id, func() error {
				logged.WriteString(fm.accesses["productcatalog"].take())
				p, ok := loggedPath(logged.String(), id)
				if !ok {
					return fmt.Errorf("no entry")
				}
				seen = p
				return nil
			})
			// The access log is JSON: a byte that is not UTF-8 (raw in a
			// query over HTTP/2) is written as U+FFFD, so the app's
			// target is compared in the log's spelling.
			if seen != asLogged(got) {
				t.Fatalf("target %q (HTTP/2 %v) via %s: authorization saw %q, the app received %q", target, h2, addr, seen, got)
			}
		}
	})
}

// asLogged is s as the JSON access log writes it.
func asLogged(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

// loggedPath finds the path of the access log entry with request id.
func loggedPath(log, id string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Path      string `json:"path"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.RequestID == id {
			return e.Path, true
		}
	}
	return "", false
}
