package extauthz

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// ApplyRequest applies an allowed Result to the upstream request's headers
// and URL: header mutations, then removals, then query parameters. Changes to
// pseudo-headers and Host are ignored, as Envoy ignores them.
func (r *Result) ApplyRequest(h http.Header, u *url.URL) {
	applyMutations(h, r.UpstreamHeaders)
	for _, name := range r.UpstreamHeadersToRemove {
		if !protectedHeader(name) {
			h.Del(name)
		}
	}
	if u == nil || (len(r.QueryParamsToSet) == 0 && len(r.QueryParamsToRemove) == 0) {
		return
	}
	q := u.Query()
	for _, p := range r.QueryParamsToSet {
		q.Set(p.Key, p.Value)
	}
	for _, k := range r.QueryParamsToRemove {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
}

// ApplyResponse adds an allowed Result's response headers to the response
// sent downstream.
func (r *Result) ApplyResponse(h http.Header) { applyMutations(h, r.ResponseHeaders) }

func applyMutations(h http.Header, ms []HeaderMutation) {
	for _, m := range ms {
		if m.Name == "" || protectedHeader(m.Name) {
			continue
		}
		_, exists := h[http.CanonicalHeaderKey(m.Name)]
		switch m.Action {
		case HeaderSet:
			h.Set(m.Name, m.Value)
		case HeaderAdd:
			h.Add(m.Name, m.Value)
		case HeaderAppend:
			if exists {
				vs := h.Values(m.Name)
				vs[len(vs)-1] += "," + m.Value
			} else {
				h.Set(m.Name, m.Value)
			}
		case HeaderAddIfAbsent:
			if !exists {
				h.Set(m.Name, m.Value)
			}
		case HeaderOverwriteIfExists:
			if exists {
				h.Set(m.Name, m.Value)
			}
		}
	}
}

func protectedHeader(name string) bool {
	return strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
