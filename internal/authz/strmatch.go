package authz

import (
	"errors"
	"strings"
)

type matchKind uint8

const (
	kindExact    matchKind = iota
	kindPrefix             // "abc*"
	kindSuffix             // "*abc"
	kindNonEmpty           // "*": any non-empty value
	kindAny                // "*" for headers and hosts: present, any value
	kindTemplate           // path template with {*} and {**}
)

// strMatch is one compiled value: Istio's exact, prefix, suffix and
// presence matches, or a path template. No value ever becomes a regular
// expression.
type strMatch struct {
	kind matchKind
	lit  string
	tmpl []tmplTok
}

// parseStrMatch compiles v; anyForStar says whether "*" also matches an
// empty value (header presence) rather than only non-empty ones.
func parseStrMatch(v string, anyForStar bool) strMatch {
	switch {
	case v == "*":
		if anyForStar {
			return strMatch{kind: kindAny}
		}
		return strMatch{kind: kindNonEmpty}
	case strings.HasPrefix(v, "*"):
		return strMatch{kind: kindSuffix, lit: v[1:]}
	case strings.HasSuffix(v, "*"):
		return strMatch{kind: kindPrefix, lit: v[:len(v)-1]}
	default:
		return strMatch{kind: kindExact, lit: v}
	}
}

func (m *strMatch) match(s string, fold bool) bool {
	switch m.kind {
	case kindExact:
		if fold {
			return strings.EqualFold(s, m.lit)
		}
		return s == m.lit
	case kindPrefix:
		if len(s) < len(m.lit) {
			return false
		}
		if fold {
			return strings.EqualFold(s[:len(m.lit)], m.lit)
		}
		return s[:len(m.lit)] == m.lit
	case kindSuffix:
		if len(s) < len(m.lit) {
			return false
		}
		if fold {
			return strings.EqualFold(s[len(s)-len(m.lit):], m.lit)
		}
		return s[len(s)-len(m.lit):] == m.lit
	case kindNonEmpty:
		return s != ""
	case kindAny:
		return true
	case kindTemplate:
		return matchTemplate(m.tmpl, s, fold)
	}
	return false
}

// anyMatchJoined reports whether a value matches the parts joined with
// ',', without building the joined string (Evaluate does not allocate).
func anyMatchJoined(ms []strMatch, parts []string, fold bool) bool {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	for i := range ms {
		m := &ms[i]
		var ok bool
		switch m.kind {
		case kindExact:
			ok = n == len(m.lit) && joinedHasAt(parts, 0, m.lit, fold)
		case kindPrefix:
			ok = n >= len(m.lit) && joinedHasAt(parts, 0, m.lit, fold)
		case kindSuffix:
			ok = n >= len(m.lit) && joinedHasAt(parts, n-len(m.lit), m.lit, fold)
		case kindNonEmpty:
			ok = n > 0
		case kindAny:
			ok = true
		}
		if ok {
			return true
		}
	}
	return false
}

// joinedHasAt reports whether the parts joined with ',' hold lit at byte
// offset off. The caller checks that lit fits.
func joinedHasAt(parts []string, off int, lit string, fold bool) bool {
	pos := 0 // offset of the current part in the joined string
	for i, p := range parts {
		if i > 0 {
			if off <= pos-1 && off+len(lit) > pos-1 && lit[pos-1-off] != ',' {
				return false
			}
		}
		start, end := max(off, pos), min(off+len(lit), pos+len(p))
		if start < end {
			a, b := p[start-pos:end-pos], lit[start-off:end-off]
			if fold && !strings.EqualFold(a, b) || !fold && a != b {
				return false
			}
		}
		pos += len(p) + 1
	}
	return true
}

func anyMatch(ms []strMatch, s string, fold bool) bool {
	for i := range ms {
		if ms[i].match(s, fold) {
			return true
		}
	}
	return false
}

// Path templates (Istio 1.22+, Envoy's URI template): {*} matches one
// non-empty path segment, {**} matches the rest of the path (zero or more
// characters, slashes included) and must be the last operator.
const (
	matchOneTemplate = "{*}"
	matchAnyTemplate = "{**}"
)

type tmplTok struct {
	op  byte // 0 literal, '1' one segment, '*' the rest
	lit string
}

func containsTemplate(p string) bool {
	return strings.Contains(p, matchOneTemplate) || strings.Contains(p, matchAnyTemplate)
}

// parseTemplate compiles a path template with Istio's validity rules: no
// '*', '{' or '}' outside an operator, an operator is a whole segment, and
// {**} is the last operator.
func parseTemplate(p string) (strMatch, error) {
	if !strings.HasPrefix(p, "/") {
		return strMatch{}, errors.New("path template must start with /")
	}
	var toks []tmplTok
	var lit strings.Builder
	sawAny := false
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if i > 0 {
			lit.WriteByte('/')
		}
		switch seg {
		case matchOneTemplate, matchAnyTemplate:
			if sawAny {
				return strMatch{}, errors.New("{**} must be the last operator")
			}
			if lit.Len() > 0 {
				toks = append(toks, tmplTok{lit: normalizeEscapes(lit.String())})
				lit.Reset()
			}
			if seg == matchAnyTemplate {
				sawAny = true
				toks = append(toks, tmplTok{op: '*'})
			} else {
				toks = append(toks, tmplTok{op: '1'})
			}
		default:
			if strings.ContainsAny(seg, "*{}") {
				return strMatch{}, errors.New("'*', '{' and '}' are only allowed as whole-segment {*} or {**}")
			}
			lit.WriteString(seg)
		}
	}
	if lit.Len() > 0 {
		toks = append(toks, tmplTok{lit: normalizeEscapes(lit.String())})
	}
	return strMatch{kind: kindTemplate, tmpl: toks}, nil
}

func hasPrefixFold(s, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if fold {
		return strings.EqualFold(s[:len(prefix)], prefix)
	}
	return s[:len(prefix)] == prefix
}

func matchTemplate(toks []tmplTok, s string, fold bool) bool {
	for i, t := range toks {
		switch t.op {
		case 0:
			if !hasPrefixFold(s, t.lit, fold) {
				return false
			}
			s = s[len(t.lit):]
		case '1':
			n := strings.IndexByte(s, '/')
			if n < 0 {
				n = len(s)
			}
			if n == 0 {
				return false
			}
			s = s[n:]
		case '*':
			// Only literals follow {**}: the rest must end with them.
			var tail int
			for _, r := range toks[i+1:] {
				tail += len(r.lit)
			}
			if len(s) < tail {
				return false
			}
			s = s[len(s)-tail:]
		}
	}
	return s == ""
}

// normalizeEscapes upper-cases the hex digits of percent escapes, as
// NormalizePath does for request paths, so both sides compare alike.
func normalizeEscapes(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	b := []byte(p)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' && isHex(b[i+1]) && isHex(b[i+2]) {
			b[i+1], b[i+2] = upperHex(b[i+1]), upperHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}
