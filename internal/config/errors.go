package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field of one resource. Its text reads
// `file:line: Kind namespace/name: field.path: message`; parts that are not
// known (a document without a kind, an error about the whole document) are
// left out.
type FieldError struct {
	File      string
	Line      int
	Kind      Kind
	Namespace string
	Name      string
	Path      string // dotted field path, "spec.rules[0].to[0].operation.paths[1]"
	Message   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "<input>"
	}
	fmt.Fprintf(&b, "%s:%d: ", file, e.Line)
	if e.Kind != "" {
		b.WriteString(string(e.Kind))
		switch {
		case e.Namespace != "" && e.Name != "":
			b.WriteString(" " + e.Namespace + "/" + e.Name)
		case e.Name != "":
			b.WriteString(" " + e.Name)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Message)
	return oneLine.Replace(b.String())
}

// oneLine keeps each error on one line whatever the input held, so that
// joined errors read one per line.
var oneLine = strings.NewReplacer("\n", `\n`, "\r", `\r`)

// lineOf returns the line where path (or its closest written ancestor)
// appears in r's source, or the document's line.
func (r *Resource) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := r.lines[p]; ok && l > 0 {
			return l
		}
	}
	return r.Source.Line
}

// parentPath drops the last element of a field path: "a.b[1]" -> "a.b",
// "a.b" -> "a", "a" -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// fieldError makes a FieldError about path of r.
func (r *Resource) fieldError(path, format string, args ...any) *FieldError {
	return &FieldError{
		File:      r.Source.File,
		Line:      r.lineOf(path),
		Kind:      r.Kind,
		Namespace: r.Meta.Namespace,
		Name:      r.Meta.Name,
		Path:      path,
		Message:   fmt.Sprintf(format, args...),
	}
}

// FieldLine returns the 1-based line where the field at path (a dotted
// path such as "spec.rules[0]") was written, or the line of its closest
// written ancestor, or the document's line. Analyzers use it to point at
// the part of a resource they talk about.
func (r *Resource) FieldLine(path string) int { return r.lineOf(path) }
