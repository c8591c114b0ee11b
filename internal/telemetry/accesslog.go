package telemetry

import (
	"fmt"
	"io"
	"strconv"
	"sync"

	"unicode/utf8"
)

// AccessLog writes one JSON object per Entry, one per line. Field names
// follow Istio's default JSON access log (accessLogEncoding: JSON) where it
// has them: start_time, method, path, protocol, response_code,
// response_flags, bytes_received, bytes_sent, duration (ms), upstream_host,
// upstream_cluster, downstream_remote_address, authority, user_agent, x_forwarded_for,
// request_id. Palisade adds direction, source_principal,
// destination_principal, mtls, authz_decision and authz_policy. As in
// Envoy, a value that is unknown is null and response_flags is "-" when
// there are none. It is safe for concurrent use; lines never interleave.
type AccessLog struct {
	mu sync.Mutex
	w  io.Writer
}

// NewAccessLog returns an access log writing to w.
func NewAccessLog(w io.Writer) *AccessLog { return &AccessLog{w: w} }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Log writes e as one line.
func (l *AccessLog) Log(e *Entry) error {
	bp := bufPool.Get().(*[]byte)
	b := AppendJSON((*bp)[:0], e)
	b = append(b, '\n')
	l.mu.Lock()
	_, err := l.w.Write(b)
	l.mu.Unlock()
	if cap(b) <= 64<<10 { // do not keep a huge buffer from one odd entry
		*bp = b
		bufPool.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("telemetry: write access log: %w", err)
	}
	return nil
}

// AppendJSON appends e as the access log's JSON object, without newline.
func AppendJSON(b []byte, e *Entry) []byte {
	b = append(b, `{"start_time":`...)
	if e.Start.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = e.Start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, '"')
	}
	b = appendStr(b, "method", e.Method)
	b = appendStr(b, "path", e.Path)
	b = appendStr(b, "protocol", e.HTTPVersion)
	b = appendInt(b, "response_code", int64(e.ResponseCode))
	flags := e.ResponseFlags
	if flags == "" {
		flags = "-"
	}
	b = appendStr(b, "response_flags", flags)
	b = appendInt(b, "bytes_received", e.BytesReceived)
	b = appendInt(b, "bytes_sent", e.BytesSent)
	b = appendInt(b, "duration", e.Duration.Milliseconds())
	b = appendStr(b, "upstream_host", e.UpstreamHost)
	b = appendStr(b, "upstream_cluster", e.UpstreamCluster)
	b = appendStr(b, "downstream_remote_address", e.DownstreamRemote)
	b = appendStr(b, "authority", e.Authority)
	b = appendStr(b, "user_agent", e.UserAgent)
	b = appendStr(b, "x_forwarded_for", e.ForwardedFor)
	b = appendStr(b, "request_id", e.RequestID)
	b = appendStr(b, "direction", e.Direction)
	b = appendStr(b, "source_principal", e.SourcePrincipal)
	b = appendStr(b, "destination_principal", e.DestinationPrincipal)
	b = append(b, `,"mtls":`...)
	b = strconv.AppendBool(b, e.MTLS)
	b = appendStr(b, "authz_decision", e.Decision)
	b = appendStr(b, "authz_policy", e.Policy)
	return append(b, '}')
}

// appendStr appends ,"key":"value" or ,"key":null for an empty value.
func appendStr(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if v == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, v)
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; control characters and the characters
// that could break out of HTML or a log viewer (<, >, &, U+2028, U+2029)
// are escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
