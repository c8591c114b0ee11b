package authz

import (
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// NormalizationMode is MeshConfig.pathNormalization.normalization.
type NormalizationMode = meshv1alpha1.MeshConfig_ProxyPathNormalization_NormalizationType

// NormalizePath normalizes a request target the way Istio configures
// Envoy (https://istio.io/latest/docs/reference/config/security/normalization/),
// before authorization and before forwarding:
//
//   - the #fragment is dropped (Envoy strips it; CVE-2021-39156);
//   - the ?query is kept as sent but never normalized;
//   - %00 anywhere in the path rejects the request, in every mode;
//   - NONE leaves the path alone;
//   - BASE (and DEFAULT) is Envoy's normalize_path (RFC 3986): decode the
//     percent-encoded unreserved characters (A-Z a-z 0-9 - . _ ~), once;
//     upper-case the hex of the escapes it keeps; turn '\' into '/';
//     resolve "." and ".." segments;
//   - MERGE_SLASHES also merges runs of '/';
//   - DECODE_AND_MERGE_SLASHES first decodes %2F and %5C (any case).
//
// A path that does not start with '/', holds a control character, space or
// a malformed escape is rejected (Envoy answers 400 to these). Bytes
// outside ASCII are percent-encoded.
func NormalizePath(mode NormalizationMode, rawPath string) (normalized string, reject bool) {
	path, query := rawPath, ""
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i:]
	}
	if !strings.HasPrefix(path, "/") {
		return "", true
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c <= ' ' || c == 0x7f {
			return "", true
		}
		if c == '%' {
			if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
				return "", true
			}
			if path[i+1] == '0' && path[i+2] == '0' {
				return "", true
			}
		}
	}
	if mode == meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE {
		return path + query, false
	}
	if mode == meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES {
		path = decodeSlashes(path)
	}
	path = removeDotSegments(decodeUnreserved(path))
	if mode == meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES ||
		mode == meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES {
		path = mergeSlashes(path)
	}
	return path + query, false
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// decodeSlashes decodes %2F and %5C (any case), and nothing else.
func decodeSlashes(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if v == '/' || v == '\\' {
				b.WriteByte(v)
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// decodeUnreserved decodes escapes of unreserved characters, upper-cases
// the hex of the others, percent-encodes bytes outside ASCII and turns '\'
// into '/'. It decodes once: "%252F" stays "%252F".
func decodeUnreserved(p string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex(p[i+1]))
				b.WriteByte(upperHex(p[i+2]))
			}
			i += 2
		case c == '\\':
			b.WriteByte('/')
		case c >= 0x80:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, "/.") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// strictPath is how a lenient backend may read a path the mesh already
// normalized: %2F and %5C decoded, unreserved characters decoded, '\' as
// '/', ";params" dropped from segments (Tomcat's "..;/"), then dot
// segments resolved; with merge, slashes are merged first (for DENY-like
// policies, where "//admin" must still be /admin). The engine checks both
// spellings: a DENY matches if either does, an ALLOW needs both to pass.
// It allocates only for paths holding '%', '\', ';', "/." (or "//" with
// merge).
func strictPath(p string, merge bool) (string, bool) {
	if !strings.ContainsAny(p, "%\\;") && !strings.Contains(p, "/.") && (!merge || !strings.Contains(p, "//")) {
		return p, false
	}
	s := stripPathParams(decodeUnreserved(decodeSlashes(p)))
	if merge {
		s = mergeSlashes(s)
	}
	s = removeDotSegments(s)
	return s, s != p
}

// stripPathParams drops ";..." up to the end of each segment.
func stripPathParams(p string) string {
	if !strings.Contains(p, ";") {
		return p
	}
	var b strings.Builder
	skip := false
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '/':
			skip = false
		case p[i] == ';':
			skip = true
		}
		if !skip {
			b.WriteByte(p[i])
		}
	}
	return b.String()
}
