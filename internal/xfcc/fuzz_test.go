package xfcc

import (
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives Format and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		elems, err := Parse(in)
		if err != nil {
			return
		}
		out := Format(elems)
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %v; formatted %q", in, err, out)
		}
		if len(elems) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(again, elems) {
			t.Fatalf("round trip of %q:\n%#v\n!=\n%#v", in, again, elems)
		}
	})
}

// FuzzElement checks that any values an element may hold, however crafted,
// come back from Parse as one element with the same values.
func FuzzElement(f *testing.F) {
	f.Add(pcID, "abc", `CN=x`, feID, "a.example")
	f.Add("a,b", `"`, `\`, "x;URI=y", " z ")
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, by, hash, subject, uri, dns string) {
		e := Element{Hash: hash, Subject: subject}
		if by != "" {
			e.By = []string{by}
		}
		if uri != "" {
			e.URI = []string{uri}
		}
		if dns != "" {
			e.DNS = []string{dns}
		}
		s := e.String()
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		want := e
		if subjectSafe(subject) {
			want.Subject = envoyUnescape(subject)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Fatalf("Parse(%q) = %#v, want %#v", s, got, want)
		}
	})
}

// envoyUnescape reads \" as " and \\ as \, as Envoy's XFCC reader does.
func envoyUnescape(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
			i++
		}
		out = append(out, s[i])
	}
	return string(out)
}
