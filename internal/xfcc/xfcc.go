package xfcc

import (
	"errors"
	"fmt"
	"strings"
)

// Header is the header's canonical name.
const Header = "X-Forwarded-Client-Cert"

// Element is what one proxy recorded about the client certificate of the
// connection it terminated.
type Element struct {
	By      []string // URI SANs of the proxy's own certificate
	Hash    string   // hex SHA-256 of the client certificate's DER
	Cert    string   // the client certificate, URL-encoded PEM
	Chain   string   // the client chain, leaf first, URL-encoded PEM
	Subject string   // the client certificate's subject (RFC 2253)
	URI     []string // URI SANs of the client certificate
	DNS     []string // DNS SANs of the client certificate
}

// Details says which details of the client certificate an element carries,
// as Envoy's set_current_client_cert_details does. By and Hash are always
// set.
type Details struct {
	Subject, Cert, Chain, URI, DNS bool
}

// IstioSidecar is what Istio's sidecar inbound listener sets.
var IstioSidecar = Details{Subject: true, URI: true, DNS: true}

// All carries every detail; String uses it.
var All = Details{Subject: true, Cert: true, Chain: true, URI: true, DNS: true}

// AppendTo appends e in Envoy's encoding, in Envoy's order (By, Hash, Cert,
// Chain, Subject, URI, DNS), with the details d selects. As in Envoy, Subject
// is written even when empty (Subject="") and URI as "URI=" when the
// certificate has none; Cert, Chain and DNS are left out when empty. The
// subject goes between the quotes as it is, as Envoy writes it, when its own
// backslash escapes keep the quoting intact (always so for RFC 2253 subjects;
// Parse then reads \" as " and \\ as \, like Envoy's reader); any other
// subject is escaped.
//
// Unlike Envoy, a By, URI or DNS value holding one of ,;=" or a backslash is
// quoted and escaped, so a crafted SAN cannot inject a pair or an element;
// SPIFFE IDs never need it and come out exactly as Envoy writes them.
func (e *Element) AppendTo(b []byte, d Details) []byte {
	n := len(b)
	sep := func() {
		if len(b) > n {
			b = append(b, ';')
		}
	}
	for _, v := range e.By {
		sep()
		b = appendValue(append(b, "By="...), v)
	}
	if e.Hash != "" {
		sep()
		b = appendValue(append(b, "Hash="...), e.Hash)
	}
	if d.Cert && e.Cert != "" {
		sep()
		b = appendQuoted(append(b, "Cert="...), e.Cert)
	}
	if d.Chain && e.Chain != "" {
		sep()
		b = appendQuoted(append(b, "Chain="...), e.Chain)
	}
	if d.Subject {
		sep()
		b = append(b, "Subject="...)
		if subjectSafe(e.Subject) {
			// As Envoy: the RFC 2253 subject as it is, its own escapes
			// (\" and \\) keeping the quoting intact.
			b = append(append(append(b, '"'), e.Subject...), '"')
		} else {
			b = appendQuoted(b, e.Subject)
		}
	}
	if d.URI {
		if len(e.URI) == 0 {
			sep()
			b = append(b, "URI="...)
		}
		for _, v := range e.URI {
			sep()
			b = appendValue(append(b, "URI="...), v)
		}
	}
	if d.DNS {
		for _, v := range e.DNS {
			sep()
			b = appendValue(append(b, "DNS="...), v)
		}
	}
	return b
}

// String returns e encoded with every detail.
func (e *Element) String() string { return string(e.AppendTo(nil, All)) }

// Format encodes elements as one header value.
func Format(elems []Element) string {
	var b []byte
	for i := range elems {
		if i > 0 {
			b = append(b, ',')
		}
		b = elems[i].AppendTo(b, All)
	}
	return string(b)
}

// subjectSafe reports whether s can go between quotes unchanged: every
// quote in it is escaped and it does not end in an escaping backslash. A
// subject in RFC 2253 form (crypto/x509, OpenSSL) always is.
func subjectSafe(s string) bool {
	bs := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' && bs%2 == 0 {
			return false
		}
		bs = backslashes(s[i], bs)
	}
	return bs%2 == 0
}

// needsQuote reports whether v must be quoted to survive parsing.
func needsQuote(v string) bool {
	return strings.ContainsAny(v, `,;="\`) || v != strings.TrimSpace(v)
}

func appendValue(b []byte, v string) []byte {
	if needsQuote(v) {
		return appendQuoted(b, v)
	}
	return append(b, v...)
}

func appendQuoted(b []byte, v string) []byte {
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}

// Errors Parse returns, wrapped with the position of the problem.
var (
	ErrUnmatchedQuote = errors.New("unmatched quote")
	ErrSyntax         = errors.New("syntax error")
)

// Parse splits a header value into its elements, oldest first; the last one
// was added by the nearest proxy. It follows Envoy's rules: ',' and ';'
// inside double quotes do not separate, '\"' and '\\' are escapes, keys are
// case-insensitive, whitespace around keys and values is dropped. It is
// stricter than Envoy's own reader: an unknown key, a pair without '=', an
// empty element, text after a closing quote or a repeated single-valued key
// (Hash, Cert, Chain, Subject) is an error. Empty By, URI and DNS values
// ("URI=") mean none. An empty header gives no elements.
func Parse(header string) ([]Element, error) {
	if strings.TrimSpace(header) == "" {
		return nil, nil
	}
	if err := checkQuotes(header); err != nil {
		return nil, err
	}
	var out []Element
	for i, raw := range split(header, ',') {
		e, err := parseElement(raw)
		if err != nil {
			return nil, fmt.Errorf("xfcc: element %d: %w", i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// checkQuotes reports a quote left open.
func checkQuotes(s string) error {
	in, bs := false, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' && bs%2 == 0 {
			in = !in
		}
		bs = backslashes(s[i], bs)
	}
	if in {
		return fmt.Errorf("xfcc: %w", ErrUnmatchedQuote)
	}
	return nil
}

// backslashes counts the run of backslashes ending at c. As in Envoy, a
// quote preceded by an odd run is escaped; backslashes escape nothing else
// when splitting.
func backslashes(c byte, run int) int {
	if c == '\\' {
		return run + 1
	}
	return 0
}

// split cuts s at every sep outside double quotes.
func split(s string, sep byte) []string {
	var out []string
	in, start, bs := false, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' && bs%2 == 0:
			in = !in
		case c == sep && !in:
			out = append(out, s[start:i])
			start = i + 1
		}
		bs = backslashes(s[i], bs)
	}
	return append(out, s[start:])
}

func parseElement(raw string) (Element, error) {
	var e Element
	if strings.TrimSpace(raw) == "" {
		return e, fmt.Errorf("empty element: %w", ErrSyntax)
	}
	var seen [4]bool // Hash, Cert, Chain, Subject
	for _, pair := range split(raw, ';') {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return e, fmt.Errorf("%q is not Key=Value: %w", pair, ErrSyntax)
		}
		val, err := unquote(strings.TrimSpace(v))
		if err != nil {
			return e, fmt.Errorf("%s: %w", k, err)
		}
		single := func(i int, dst *string) error {
			if seen[i] {
				return fmt.Errorf("%s given twice: %w", k, ErrSyntax)
			}
			seen[i] = true
			*dst = val
			return nil
		}
		multi := func(dst *[]string) {
			if val != "" {
				*dst = append(*dst, val)
			}
		}
		switch strings.ToLower(k) {
		case "by":
			multi(&e.By)
		case "hash":
			err = single(0, &e.Hash)
		case "cert":
			err = single(1, &e.Cert)
		case "chain":
			err = single(2, &e.Chain)
		case "subject":
			err = single(3, &e.Subject)
		case "uri":
			multi(&e.URI)
		case "dns":
			multi(&e.DNS)
		default:
			err = fmt.Errorf("unknown key %q: %w", k, ErrSyntax)
		}
		if err != nil {
			return e, err
		}
	}
	return e, nil
}

// unquote decodes one value: quoted ("...") or bare, with '\"' and '\\'
// escapes; any other backslash stays as it is, as in Envoy.
func unquote(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		end := closingQuote(v)
		if end != len(v)-1 {
			return "", fmt.Errorf("text after closing quote: %w", ErrSyntax)
		}
		v = v[1:end]
	} else if closingQuote(" "+v) >= 0 {
		return "", fmt.Errorf("quote inside bare value: %w", ErrSyntax)
	}
	if !strings.Contains(v, `\`) {
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && (v[i+1] == '"' || v[i+1] == '\\') {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String(), nil
}

// closingQuote returns the index of the first unescaped quote after v[0],
// or -1.
func closingQuote(v string) int {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}
