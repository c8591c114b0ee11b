package main

import (
	"net/http/httptest"
	"testing"
)

func TestCaller(t *testing.T) {
	const fe = "spiffe://cluster.local/ns/workshop/sa/frontend-sa"
	const pc = "spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"
	tests := []struct {
		name string
		xfcc string
		want string
	}{
		{name: "no header", xfcc: "", want: ""},
		{
			name: "istio sidecar element",
			xfcc: `By=` + pc + `;Hash=0a1b;Subject="";URI=` + fe,
			want: fe,
		},
		{
			name: "appended elements take the last",
			xfcc: `By=x;Hash=1;URI=spiffe://evil/ns/x/sa/y,By=` + pc + `;Hash=2;Subject="";URI=` + fe,
			want: fe,
		},
		{
			name: "quoted subject with separators",
			xfcc: `By=` + pc + `;Hash=2;Subject="CN=a,O=b;c=\"d\"";URI=` + fe,
			want: fe,
		},
		{name: "key case-insensitive", xfcc: `by=a;uri=` + fe, want: fe},
		{name: "quoted uri", xfcc: `URI="` + fe + `"`, want: fe},
		{name: "empty uri", xfcc: `By=a;Hash=b;Subject="";URI=`, want: ""},
		{name: "no uri", xfcc: `By=a;Hash=b;DNS=x.example`, want: ""},
		{name: "garbage", xfcc: `;;,,"`, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.xfcc != "" {
				r.Header.Set(xfccHeader, tt.xfcc)
			}
			if got := caller(r); got != tt.want {
				t.Errorf("caller() = %q, want %q", got, tt.want)
			}
		})
	}
}
