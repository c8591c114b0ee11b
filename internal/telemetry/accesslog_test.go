package telemetry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var start = time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.FixedZone("CET", 3600))

func httpEntry() *Entry {
	return &Entry{
		Start: start, Duration: 12*time.Millisecond + 700*time.Microsecond,
		Protocol: ProtocolHTTP, HTTPVersion: "HTTP/1.1", Direction: Inbound,
		SourcePrincipal:      "spiffe://cluster.local/ns/workshop/sa/frontend-sa",
		DestinationPrincipal: "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa",
		SourceWorkload:       "frontend", SourceNamespace: "workshop", SourceApp: "frontend", SourceVersion: "v1",
		DestinationWorkload: "productcatalog", DestinationNamespace: "workshop",
		DestinationApp: "productcatalog", DestinationVersion: "v1",
		DestinationService: "productcatalog.workshop.svc.cluster.local",
		MTLS:               true,
		Method:             "GET", Path: "/products/", Authority: "productcatalog:5000",
		UserAgent: "Go-http-client/1.1", RequestID: "5d2c-41", ForwardedFor: "10.0.0.1",
		ResponseCode: 200, BytesReceived: 120, BytesSent: 2048,
		Decision: "ALLOW", Policy: "workshop/productapp[0]",
		UpstreamHost: "127.0.0.1:5000", DownstreamRemote: "127.0.0.1:53122",
	}
}

func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("line %q is not JSON: %v", line, err)
	}
	return m
}

func TestAccessLog(t *testing.T) {
	tests := []struct {
		name  string
		entry *Entry
		want  map[string]any // json.Number for numbers, nil for null
	}{
		{
			name:  "http request",
			entry: httpEntry(),
			want: map[string]any{
				"start_time": "2025-03-04T04:06:07.891Z", "method": "GET", "path": "/products/",
				"protocol": "HTTP/1.1", "response_code": json.Number("200"), "response_flags": "-",
				"bytes_received": json.Number("120"), "bytes_sent": json.Number("2048"), "duration": json.Number("12"),
				"upstream_host": "127.0.0.1:5000", "upstream_cluster": nil, "downstream_remote_address": "127.0.0.1:53122",
				"authority": "productcatalog:5000", "user_agent": "Go-http-client/1.1",
				"x_forwarded_for": "10.0.0.1", "request_id": "5d2c-41", "direction": "inbound",
				"source_principal":      "spiffe://cluster.local/ns/workshop/sa/frontend-sa",
				"destination_principal": "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa",
				"mtls":                  true, "authz_decision": "ALLOW", "authz_policy": "workshop/productapp[0]",
			},
		},
		{
			name: "tcp connection, plaintext, no policy",
			entry: &Entry{
				Start: start, Duration: 3 * time.Second, Protocol: ProtocolTCP, Direction: Outbound,
				ResponseFlags: "UF,URX", BytesReceived: 10, BytesSent: 20, UpstreamHost: "127.0.0.1:3000",
			},
			want: map[string]any{
				"start_time": "2025-03-04T04:06:07.891Z", "method": nil, "path": nil, "protocol": nil,
				"response_code": json.Number("0"), "response_flags": "UF,URX",
				"bytes_received": json.Number("10"), "bytes_sent": json.Number("20"), "duration": json.Number("3000"),
				"upstream_host": "127.0.0.1:3000", "upstream_cluster": nil, "downstream_remote_address": nil, "authority": nil,
				"user_agent": nil, "x_forwarded_for": nil, "request_id": nil, "direction": "outbound",
				"source_principal": nil, "destination_principal": nil, "mtls": false,
				"authz_decision": nil, "authz_policy": nil,
			},
		},
		{
			name: "denied request with hostile strings",
			entry: &Entry{
				Method: "POST", Path: "/a\"b\\c\n\x00</script>\u2028\xff", UserAgent: "curl/8 \t",
				ResponseCode: 403, Decision: "DENY", Policy: "ns/deny-all[0]",
			},
			want: map[string]any{
				"start_time": nil, "method": "POST", "path": "/a\"b\\c\n\x00</script>\u2028\ufffd",
				"protocol": nil, "response_code": json.Number("403"), "response_flags": "-",
				"bytes_received": json.Number("0"), "bytes_sent": json.Number("0"), "duration": json.Number("0"),
				"upstream_host": nil, "upstream_cluster": nil, "downstream_remote_address": nil, "authority": nil,
				"user_agent": "curl/8 \t", "x_forwarded_for": nil, "request_id": nil, "direction": nil,
				"source_principal": nil, "destination_principal": nil, "mtls": false,
				"authz_decision": "DENY", "authz_policy": "ns/deny-all[0]",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := NewAccessLog(&buf).Log(tt.entry); err != nil {
				t.Fatal(err)
			}
			out := buf.Bytes()
			if bytes.Count(out, []byte("\n")) != 1 || out[len(out)-1] != '\n' {
				t.Fatalf("want exactly one line, got %q", out)
			}
			got := decodeLine(t, out)
			for k, want := range tt.want {
				v, ok := got[k]
				if !ok {
					t.Errorf("field %s missing", k)
					continue
				}
				if v != want {
					t.Errorf("%s = %#v, want %#v", k, v, want)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("%d fields, want %d: %s", len(got), len(tt.want), out)
			}
		})
	}
}

func TestAccessLogConcurrent(t *testing.T) {
	var buf bytes.Buffer
	l := NewAccessLog(&buf)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := httpEntry()
			e.Path = strings.Repeat("x", w*50)
			for range each {
				if err := l.Log(e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		m := decodeLine(t, sc.Bytes())
		if m["method"] != "GET" {
			t.Fatalf("line %d garbled: %s", n, sc.Bytes())
		}
		n++
	}
	if n != workers*each {
		t.Errorf("%d lines, want %d", n, workers*each)
	}
}

type failWriter struct{}

var errDisk = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errDisk }

func TestAccessLogWriteError(t *testing.T) {
	err := NewAccessLog(failWriter{}).Log(httpEntry())
	if !errors.Is(err, errDisk) || !strings.HasPrefix(err.Error(), "telemetry: write access log: ") {
		t.Errorf("Log = %v, want the wrapped write error", err)
	}
}

// FuzzAppendJSONString checks that any string becomes valid JSON that
// decodes back to the same text (invalid UTF-8 replaced by U+FFFD).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\n\r\t", "<>&", "\u2028\u2029", "\xff\xfe", "é漢字🙂"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: %v", s, b, err)
		}
		if want := toValidPerByte(s); got != want {
			t.Fatalf("round trip of %q = %q", s, got)
		}
	})
}

// toValidPerByte replaces each invalid byte with U+FFFD, as encoding/json
// and appendJSONString do.
func toValidPerByte(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += n
	}
	return b.String()
}
