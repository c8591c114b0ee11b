package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many values one document may expand to, so that
// aliases cannot blow a small file up into an enormous one.
const maxNodes = 1 << 20

// jsonDoc is a YAML subtree rendered as JSON with one token per line, so
// that a JSON decoder's error position (line, or byte offset) maps back to
// the field path and the YAML line it came from.
type jsonDoc struct {
	buf   bytes.Buffer
	refs  []lineRef      // refs[i] describes JSON line i+1
	lines map[string]int // field path -> YAML line
	nodes int
	// merged holds the entries of mappings already read as merge (<<)
	// sources: an alias may name the same one many times, and mappings
	// that merge two aliases of the one before would otherwise cost 2^n.
	merged map[*yaml.Node][]mapEntry
}

type lineRef struct {
	path string
	line int
}

// pathError is an error about one field of a document, before it is known
// which resource it belongs to.
type pathError struct {
	path string
	line int
	msg  string
}

func (e *pathError) Error() string { return e.path + ": " + e.msg }

// toJSON renders n (a YAML value) as JSON. prefix is the field path of n.
func toJSON(n *yaml.Node, prefix string) (*jsonDoc, error) {
	d := &jsonDoc{lines: map[string]int{}}
	if err := d.value(n, prefix, 0); err != nil {
		return nil, err
	}
	return d, nil
}

// newline starts a new JSON line that belongs to path at YAML line.
func (d *jsonDoc) newline(path string, line int) {
	if len(d.refs) > 0 {
		d.buf.WriteByte('\n')
	}
	d.refs = append(d.refs, lineRef{path: path, line: line})
}

// atLine returns the path and YAML line of a 1-based JSON line.
func (d *jsonDoc) atLine(jsonLine int) (lineRef, bool) {
	if jsonLine < 1 || jsonLine > len(d.refs) {
		return lineRef{}, false
	}
	return d.refs[jsonLine-1], true
}

// atOffset returns the path and YAML line of the JSON token that ends at
// byte offset off (as json.UnmarshalTypeError reports it).
func (d *jsonDoc) atOffset(off int64) (lineRef, bool) {
	b := d.buf.Bytes()
	if off < 0 || off > int64(len(b)) {
		return lineRef{}, false
	}
	if off > 0 {
		off--
	}
	return d.atLine(bytes.Count(b[:off], []byte{'\n'}) + 1)
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (d *jsonDoc) value(n *yaml.Node, path string, depth int) error {
	d.nodes++
	if d.nodes > maxNodes {
		return &pathError{path: path, line: n.Line, msg: "document too large (too many values after expanding aliases)"}
	}
	if depth > 200 {
		return &pathError{path: path, line: n.Line, msg: "document nested too deeply"}
	}
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return &pathError{path: path, line: n.Line, msg: "unknown alias"}
		}
		return d.value(n.Alias, path, depth+1)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			d.newline(path, n.Line)
			d.buf.WriteString("null")
			return nil
		}
		return d.value(n.Content[0], path, depth+1)
	case yaml.MappingNode:
		return d.mapping(n, path, depth)
	case yaml.SequenceNode:
		d.newline(path, n.Line)
		d.buf.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				d.buf.WriteByte(',')
			}
			if err := d.value(item, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		d.newline(path, n.Line)
		d.buf.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		d.newline(path, n.Line)
		return d.scalar(n, path)
	}
	return &pathError{path: path, line: n.Line, msg: "unsupported YAML node"}
}

// mapEntry is one key/value pair of a mapping after merge keys ("<<") are
// resolved.
type mapEntry struct {
	key, val *yaml.Node
	name     string
}

func (d *jsonDoc) entries(n *yaml.Node, path string, depth int) ([]mapEntry, error) {
	if depth > 200 {
		return nil, &pathError{path: path, line: n.Line, msg: "document nested too deeply"}
	}
	d.nodes += len(n.Content) / 2
	if d.nodes > maxNodes {
		return nil, &pathError{path: path, line: n.Line, msg: "document too large (too many values after expanding aliases)"}
	}
	var own, merged []mapEntry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, &pathError{path: path, line: k.Line, msg: "mapping keys must be strings"}
		}
		if k.Tag == "!!merge" {
			src := v
			if src.Kind == yaml.AliasNode && src.Alias != nil {
				src = src.Alias
			}
			var srcs []*yaml.Node
			switch src.Kind {
			case yaml.MappingNode:
				srcs = []*yaml.Node{src}
			case yaml.SequenceNode:
				for _, s := range src.Content {
					if s.Kind == yaml.AliasNode && s.Alias != nil {
						s = s.Alias
					}
					srcs = append(srcs, s)
				}
			}
			for _, s := range srcs {
				if s.Kind != yaml.MappingNode {
					return nil, &pathError{path: path, line: v.Line, msg: "merge key (<<) needs a mapping"}
				}
				es, ok := d.merged[s]
				if !ok {
					var err error
					if es, err = d.entries(s, path, depth+1); err != nil {
						return nil, err
					}
					if d.merged == nil {
						d.merged = map[*yaml.Node][]mapEntry{}
					}
					d.merged[s] = es
				}
				merged = append(merged, es...)
			}
			continue
		}
		own = append(own, mapEntry{key: k, val: v, name: k.Value})
	}
	seen := map[string]bool{}
	out := make([]mapEntry, 0, len(own)+len(merged))
	for _, e := range own {
		if seen[e.name] {
			return nil, &pathError{path: joinPath(path, e.name), line: e.key.Line, msg: "duplicate key"}
		}
		seen[e.name] = true
		out = append(out, e)
	}
	for _, e := range merged {
		if !seen[e.name] {
			seen[e.name] = true
			out = append(out, e)
		}
	}
	return out, nil
}

func (d *jsonDoc) mapping(n *yaml.Node, path string, depth int) error {
	es, err := d.entries(n, path, depth)
	if err != nil {
		return err
	}
	d.newline(path, n.Line)
	d.buf.WriteByte('{')
	for i, e := range es {
		if i > 0 {
			d.buf.WriteByte(',')
		}
		p := joinPath(path, e.name)
		if _, ok := d.lines[p]; !ok {
			d.lines[p] = e.key.Line
		}
		d.newline(p, e.key.Line)
		writeJSONString(&d.buf, e.name)
		d.buf.WriteByte(':')
		if err := d.value(e.val, p, depth+1); err != nil {
			return err
		}
		// A value's path line should point at its key when the value sits
		// on the key's line or below it.
		d.lines[p] = e.key.Line
	}
	d.newline(path, n.Line)
	d.buf.WriteByte('}')
	return nil
}

func (d *jsonDoc) scalar(n *yaml.Node, path string) error {
	switch n.ShortTag() {
	case "!!null":
		d.buf.WriteString("null")
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return &pathError{path: path, line: n.Line, msg: "invalid boolean " + strconv.Quote(n.Value)}
		}
		d.buf.WriteString(strconv.FormatBool(b))
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			d.buf.WriteString(strconv.FormatInt(i, 10))
			return nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			d.buf.WriteString(strconv.FormatUint(u, 10))
			return nil
		}
		return &pathError{path: path, line: n.Line, msg: "integer out of range: " + n.Value}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return &pathError{path: path, line: n.Line, msg: "invalid number " + strconv.Quote(n.Value)}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return &pathError{path: path, line: n.Line, msg: "NaN and infinite numbers are not allowed"}
		}
		b, _ := json.Marshal(f)
		d.buf.Write(b)
	case "!!timestamp":
		var t time.Time
		if err := n.Decode(&t); err == nil {
			writeJSONString(&d.buf, t.Format(time.RFC3339Nano))
			return nil
		}
		writeJSONString(&d.buf, n.Value)
	case "!!str", "!!binary":
		writeJSONString(&d.buf, n.Value)
	default:
		if strings.HasPrefix(n.Tag, "!!") {
			return &pathError{path: path, line: n.Line, msg: "unsupported YAML tag " + n.Tag}
		}
		// Local tags (!foo) carry no meaning here; keep the text.
		writeJSONString(&d.buf, n.Value)
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, err := json.Marshal(s)
	if err != nil {
		// json.Marshal of a string cannot fail; keep the output valid anyway.
		enc = []byte(`""`)
	}
	b.Write(enc)
}

// errNotMapping is returned for documents whose top level is not a mapping.
var errNotMapping = errors.New("a resource must be a YAML mapping")
