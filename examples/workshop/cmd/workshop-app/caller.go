package main

import (
	"net/http"
	"strings"
)

// xfccHeader is the header the sidecar sets on inbound requests with the
// certificate details of the peer that called through mTLS.
const xfccHeader = "X-Forwarded-Client-Cert"

// caller returns the SPIFFE ID of the workload that called r, as the sidecar
// reported it in X-Forwarded-Client-Cert, or "" when the request did not come
// over mTLS. The sidecar appends its own element last (Envoy's
// APPEND_FORWARD), so the last element's URI is the direct caller; earlier
// elements come from further away and are not trusted here.
func caller(r *http.Request) string {
	v := r.Header.Get(xfccHeader)
	if v == "" {
		return ""
	}
	elems := splitUnquoted(v, ',')
	for _, pair := range splitUnquoted(elems[len(elems)-1], ';') {
		key, val, ok := strings.Cut(pair, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "URI") {
			continue
		}
		return unquote(strings.TrimSpace(val))
	}
	return ""
}

// splitUnquoted splits s at every sep that is not inside double quotes.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	inQuotes, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			inQuotes = !inQuotes
		case c == sep && !inQuotes:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote removes surrounding double quotes and backslash escapes.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
