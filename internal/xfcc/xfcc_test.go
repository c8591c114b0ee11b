package xfcc

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	lyftHash = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"
	feID     = "spiffe://cluster.local/ns/workshop/sa/frontend-sa"
	pcID     = "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"
)

var parseTests = []struct {
	name    string
	in      string
	want    []Element
	wantErr error // matched with errors.Is; ErrSyntax or ErrUnmatchedQuote
}{
	{name: "empty", in: "", want: nil},
	{
		name: "envoy doc one element",
		in:   `By=http://frontend.lyft.com;Hash=` + lyftHash + `;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`,
		want: []Element{{
			By: []string{"http://frontend.lyft.com"}, Hash: lyftHash,
			Subject: "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client",
			URI:     []string{"http://testclient.lyft.com"},
		}},
	},
	{
		name: "envoy doc two elements",
		in:   `By=http://frontend.lyft.com;Hash=` + lyftHash + `;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com`,
		want: []Element{
			{By: []string{"http://frontend.lyft.com"}, Hash: lyftHash, URI: []string{"http://testclient.lyft.com"}},
			{By: []string{"http://backend.lyft.com"}, Hash: "9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e", URI: []string{"http://frontend.lyft.com"}},
		},
	},
	{
		name: "envoy doc dns sans",
		in:   `By=http://frontend.lyft.com;Hash=` + lyftHash + `;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com`,
		want: []Element{{
			By: []string{"http://frontend.lyft.com"}, Hash: lyftHash,
			Subject: "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client",
			URI:     []string{"http://testclient.lyft.com"}, DNS: []string{"lyft.com", "www.lyft.com"},
		}},
	},
	{
		name: "istio sidecar",
		in:   `By=` + pcID + `;Hash=` + lyftHash + `;Subject="";URI=` + feID,
		want: []Element{{By: []string{pcID}, Hash: lyftHash, URI: []string{feID}}},
	},
	{
		name: "subject with separators and escaped quote",
		in:   `Hash=ab;Subject="CN=a\"b,O=c;d=e\\";URI=x`,
		want: []Element{{Hash: "ab", Subject: `CN=a"b,O=c;d=e\`, URI: []string{"x"}}},
	},
	{
		name: "cert quoted",
		in:   `Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A"`,
		want: []Element{{Hash: "ab", Cert: "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A"}},
	},
	{
		name: "keys case-insensitive, spaces trimmed",
		in:   ` by = a ; HASH = b ;uri= c ; dns=d `,
		want: []Element{{By: []string{"a"}, Hash: "b", URI: []string{"c"}, DNS: []string{"d"}}},
	},
	{name: "empty uri means none", in: `By=a;Hash=b;Subject="";URI=`, want: []Element{{By: []string{"a"}, Hash: "b"}}},
	{name: "quoted uri", in: `URI="spiffe://td/ns/a,b"`, want: []Element{{URI: []string{"spiffe://td/ns/a,b"}}}},
	{name: "escaped quote in bare value", in: `URI=a\"b`, want: []Element{{URI: []string{`a"b`}}}},
	{
		name: "backslash does not escape a comma",
		in:   `URI=a\,URI=b`,
		want: []Element{{URI: []string{`a\`}}, {URI: []string{"b"}}},
	},
	{name: "unmatched quote", in: `By=a;Subject="abc`, wantErr: ErrUnmatchedQuote},
	{name: "escaped closing quote", in: `Subject="abc\"`, wantErr: ErrUnmatchedQuote},
	{name: "unknown key", in: `By=a;Foo=b`, wantErr: ErrSyntax},
	{name: "pair without equals", in: `By=a;Hash`, wantErr: ErrSyntax},
	{name: "empty key", in: `=a`, wantErr: ErrSyntax},
	{name: "empty element", in: `By=a,,By=b`, wantErr: ErrSyntax},
	{name: "trailing comma", in: `By=a,`, wantErr: ErrSyntax},
	{name: "trailing semicolon", in: `By=a;`, wantErr: ErrSyntax},
	{name: "text after quote", in: `Subject="a"b`, wantErr: ErrSyntax},
	{name: "quote inside bare value", in: `URI=a"b;c"`, wantErr: ErrSyntax},
	{name: "hash twice", in: `Hash=a;Hash=b`, wantErr: ErrSyntax},
	{name: "subject twice", in: `Subject="";Subject="x"`, wantErr: ErrSyntax},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "xfcc: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) =\n%#v\nwant\n%#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendTo(t *testing.T) {
	full := Element{
		By: []string{pcID}, Hash: lyftHash, Cert: "C%0A", Chain: "C%0AD%0A",
		Subject: `CN=x\, "y"`, URI: []string{feID}, DNS: []string{"a.example", "b.example"},
	}
	tests := []struct {
		name    string
		e       Element
		details Details
		want    string
	}{
		{
			name: "istio sidecar, spiffe only",
			e:    Element{By: []string{pcID}, Hash: lyftHash, URI: []string{feID}}, details: IstioSidecar,
			want: `By=` + pcID + `;Hash=` + lyftHash + `;Subject="";URI=` + feID,
		},
		{
			name: "istio sidecar, no uri san",
			e:    Element{By: []string{pcID}, Hash: lyftHash}, details: IstioSidecar,
			want: `By=` + pcID + `;Hash=` + lyftHash + `;Subject="";URI=`,
		},
		{
			name: "all details in envoy order", e: full, details: All,
			want: `By=` + pcID + `;Hash=` + lyftHash + `;Cert="C%0A";Chain="C%0AD%0A";Subject="CN=x\\, \"y\"";URI=` + feID + `;DNS=a.example;DNS=b.example`,
		},
		{
			name: "only uri", e: full, details: Details{URI: true},
			want: `By=` + pcID + `;Hash=` + lyftHash + `;URI=` + feID,
		},
		{
			name: "rfc 2253 subject written as envoy does",
			e:    Element{Hash: "h", Subject: `CN=Client\, Inc,O=\"Q\"`}, details: Details{Subject: true},
			want: `Hash=h;Subject="CN=Client\, Inc,O=\"Q\""`,
		},
		{name: "nothing", e: Element{}, details: Details{}, want: ""},
		{
			name: "crafted san cannot inject an element",
			e:    Element{Hash: "h", URI: []string{`spiffe://td/x,By=evil;URI=spiffe://td/admin`}}, details: Details{URI: true},
			want: `Hash=h;URI="spiffe://td/x,By=evil;URI=spiffe://td/admin"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.e.AppendTo([]byte("x:"), tt.details))
			if got != "x:"+tt.want {
				t.Fatalf("AppendTo =\n%s\nwant\n%s", got, "x:"+tt.want)
			}
			if tt.want == "" {
				return
			}
			back, err := Parse(tt.want)
			if err != nil || len(back) != 1 {
				t.Fatalf("Parse(AppendTo) = %v, %v; want one element", back, err)
			}
			if tt.details == All && !reflect.DeepEqual(back[0], tt.e) {
				t.Errorf("round trip = %#v, want %#v", back[0], tt.e)
			}
			if tt.details.URI && !reflect.DeepEqual(back[0].URI, tt.e.URI) {
				t.Errorf("round trip URI = %q, want %q", back[0].URI, tt.e.URI)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	elems := []Element{
		{By: []string{"spiffe://td/gw"}, Hash: "aa", URI: []string{"spiffe://td/client"}},
		{By: []string{pcID}, Hash: "bb", URI: []string{feID}},
	}
	got := Format(elems)
	want := `By=spiffe://td/gw;Hash=aa;Subject="";URI=spiffe://td/client,By=` + pcID + `;Hash=bb;Subject="";URI=` + feID
	if got != want {
		t.Fatalf("Format =\n%s\nwant\n%s", got, want)
	}
	back, err := Parse(got)
	if err != nil || !reflect.DeepEqual(back, elems) {
		t.Errorf("Parse(Format) = %#v, %v", back, err)
	}
}
