package proxy

import (
	"net/http"
	"strings"

	"palisade.dev/palisade/internal/authz"
)

// requestTarget is the path and query of r as the client wrote them,
// before net/http's parsing re-encoded anything: the origin-form target
// of HTTP/1.1 or the :path of HTTP/2, and for an HTTP/1.1 absolute-form
// target (RFC 9112 section 3.2.2) what follows its authority, as Envoy's
// codec takes it (the authority becomes the Host). ok is false for a
// target that is not a path: "*", an authority, an absolute :path.
func requestTarget(r *http.Request) (target string, ok bool) {
	target = r.RequestURI
	if r.ProtoMajor == 1 && r.URL.IsAbs() {
		rest := target[len(r.URL.Scheme)+len("://"):]
		i := strings.IndexAny(rest, "/?")
		if i < 0 {
			return "/", true
		}
		target = rest[i:]
		if target[0] == '?' {
			target = "/" + target
		}
	}
	return target, strings.HasPrefix(target, "/")
}

// normalizeRequest puts r's target into the form authorization sees and
// the app receives, or answers the request itself as Envoy's connection
// manager does: 404 for CONNECT (it matches no route) and for a target
// that is not a path (OPTIONS *, an absolute :path), 400 for a #fragment
// (Envoy's http_reject_path_with_fragment) and for what path
// normalization refuses. It reports whether the request may go on.
func (p *Proxy) normalizeRequest(w http.ResponseWriter, r *http.Request, cfg *Compiled, rec *Record) (string, bool) {
	target, ok := requestTarget(r)
	rec.Path = target
	switch {
	case r.Method == http.MethodConnect || !ok:
		rec.ResponseFlags = "NR"
		p.log.Info("request refused", "reason", "no route for a target that is not a path", "method", r.Method, "target", target)
		http.Error(w, "", http.StatusNotFound)
		return "", false
	case strings.IndexByte(target, '#') >= 0:
		p.log.Info("request refused", "reason", "fragment in the request target", "target", target)
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return "", false
	}
	path, reject := authz.NormalizePath(cfg.Mesh.GetPathNormalization().GetNormalization(), target)
	var err error
	if !reject {
		path, err = setRequestURI(r, path)
	}
	if reject || err != nil {
		p.log.Info("request refused", "reason", "path normalization", "target", target)
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return "", false
	}
	rec.Path = path
	return path, true
}
