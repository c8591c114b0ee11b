package jwt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// FuzzDecodeObject checks decodeObject never panics and accepts exactly
// what a slower reader built on json.Decoder tokens accepts.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"c":3}]}}`, `[]`, `null`, `"s"`,
		`{"a":1} x`, `{"a":1}{}`, `{"\u0061":1,"a":2}`, `{"a\"":1,"a\\":2}`, `{"a":"}\"{","a":3}`,
		`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, `{"a":[{"a":1},{"a":2}]}`,
		"{\"a\xff\":1,\"a\xfe\":2}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeObject(b)
		want, werr := decodeObjectOracle(b)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeObject(%q) err = %v, oracle err = %v", b, err, werr)
		}
		if err == nil && (got == nil || len(got) != len(want)) {
			t.Fatalf("decodeObject(%q) = %v, oracle %v", b, got, want)
		}
	})
}

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name, in string
		dup      bool
		ok       bool
	}{
		{"empty", `{}`, false, true},
		{"flat", `{"a":1,"b":"x"}`, false, true},
		{"duplicate", `{"a":1,"a":2}`, true, false},
		{"duplicate after escape", `{"\u0061":1,"a":2}`, true, false},
		{"same name in sibling objects", `{"x":{"a":1},"y":{"a":2}}`, false, true},
		{"same name in array elements", `{"x":[{"a":1},{"a":2}]}`, false, true},
		{"duplicate nested", `{"x":{"a":1,"a":2}}`, true, false},
		{"brace inside a string value", `{"a":"}{\"","b":1}`, false, true},
		{"array", `[1]`, false, false},
		{"null", `null`, false, false},
		{"trailing data", `{} {}`, false, false},
		{"too deep", `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeObject([]byte(tt.in))
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.dup != errors.Is(err, errDuplicate) {
				t.Fatalf("err = %v, want duplicate=%v", err, tt.dup)
			}
		})
	}
}

// decodeObject decodes a JSON object, refusing duplicate member names at
// any depth and anything after the object, so that every reader of the
// token sees the same claims.
func decodeObjectOracle(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	obj, err := oracleReadObject(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return obj, nil
}

func oracleReadObject(dec *json.Decoder, depth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("JSON nested deeper than %d", maxDepth)
	}
	obj := make(map[string]any)
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := kt.(string)
		if !ok {
			return nil, fmt.Errorf("member name is %T", kt)
		}
		if _, dup := obj[k]; dup {
			return nil, fmt.Errorf("%w %.32q", errDuplicate, k)
		}
		v, err := oracleReadValue(dec, depth)
		if err != nil {
			return nil, err
		}
		obj[k] = v
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	return obj, nil
}

func oracleReadValue(dec *json.Decoder, depth int) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := t.(json.Delim)
	if !ok {
		return t, nil
	}
	switch d {
	case '{':
		return oracleReadObject(dec, depth+1)
	case '[':
		if depth+1 > maxDepth {
			return nil, fmt.Errorf("JSON nested deeper than %d", maxDepth)
		}
		arr := []any{}
		for dec.More() {
			v, err := oracleReadValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, err
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unexpected %v", d)
}
