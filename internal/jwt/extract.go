package jwt

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

type locationKind int

const (
	fromHeader locationKind = iota
	fromParam
	fromCookie
)

// location is one place a token may be, shared by the rules naming it.
type location struct {
	kind   locationKind
	name   string // canonical header name, parameter or cookie name
	prefix string // headers only
	rules  []int  // indexes into Authenticator.rules
}

func (l *location) id() string { return l.String() }

func (l *location) String() string {
	switch l.kind {
	case fromHeader:
		return fmt.Sprintf("header %s: %s", l.name, l.prefix)
	case fromParam:
		return "param " + l.name
	default:
		return "cookie " + l.name
	}
}

// found is one token taken from a request.
type found struct {
	raw string
	loc *location
}

// extract returns every token of the request, in header, parameter and
// cookie order. A configured header present without any configured prefix
// is an error: Istio's JWTHeader documents it as invalid.
func (a *Authenticator) extract(r *http.Request) ([]found, *Error) {
	var out []found
	for i := 0; i < len(a.headers); {
		name := a.headers[i].name
		j := i
		for j < len(a.headers) && a.headers[j].name == name {
			j++
		}
		group := a.headers[i:j] // longest prefix first
		i = j
		for _, v := range r.Header.Values(name) {
			var loc *location
			for _, l := range group {
				if strings.HasPrefix(v, l.prefix) {
					loc = l
					break
				}
			}
			if loc == nil {
				return nil, unauthorized(MsgMissing, fmt.Sprintf("header %s does not start with %s", name, prefixes(group)))
			}
			out = append(out, found{raw: strings.TrimSpace(v[len(loc.prefix):]), loc: loc})
		}
	}
	if len(a.params) > 0 && r.URL != nil && r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil && len(q) == 0 {
			q = nil
		}
		for _, l := range a.params {
			for _, v := range q[l.name] {
				out = append(out, found{raw: v, loc: l})
			}
		}
	}
	if len(a.cookies) > 0 && r.Header.Get("Cookie") != "" {
		cs := r.Cookies()
		for _, l := range a.cookies {
			for _, c := range cs {
				if c.Name == l.name {
					out = append(out, found{raw: c.Value, loc: l})
				}
			}
		}
	}
	return out, nil
}

func prefixes(ls []*location) string {
	ps := make([]string, len(ls))
	for i, l := range ls {
		ps[i] = fmt.Sprintf("%q", l.prefix)
	}
	return strings.Join(ps, " or ")
}

// remove takes a token's location out of the request before it reaches
// the app.
func remove(r *http.Request, l *location) {
	switch l.kind {
	case fromHeader:
		r.Header.Del(l.name)
	case fromParam:
		removeParam(r, l.name)
	case fromCookie:
		removeCookie(r, l.name)
	}
}

// removeParam drops every value of one query parameter and keeps the
// other parameters exactly as sent.
func removeParam(r *http.Request, name string) {
	if r.URL == nil || r.URL.RawQuery == "" {
		return
	}
	parts := strings.Split(r.URL.RawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == name {
			continue
		}
		kept = append(kept, p)
	}
	r.URL.RawQuery = strings.Join(kept, "&")
	if r.RequestURI != "" {
		r.RequestURI = r.URL.RequestURI()
	}
	r.Form, r.PostForm = nil, nil
}

// removeCookie drops one cookie from every Cookie header.
func removeCookie(r *http.Request, name string) {
	var keep []string
	for _, line := range r.Header.Values("Cookie") {
		for _, part := range strings.Split(line, ";") {
			n, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if n == name || strings.TrimSpace(part) == "" {
				continue
			}
			keep = append(keep, strings.TrimSpace(part))
		}
	}
	r.Header.Del("Cookie")
	if len(keep) > 0 {
		r.Header.Set("Cookie", strings.Join(keep, "; "))
	}
}
