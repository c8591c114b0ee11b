package telemetry

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// everyField returns an entry with each field set to a value that is not
// its zero value, so a field the hand-written encoding leaves out shows.
func everyField(t testing.TB) Entry {
	var e Entry
	v := reflect.ValueOf(&e).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + ` "<&>"\ é` + "\t\x01\u2028")
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(-1 - i))
		case reflect.Uint32:
			f.SetUint(uint64(1 + i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("field %s: type %s not covered by this test", v.Type().Field(i).Name, f.Type())
			}
			f.Set(reflect.ValueOf(time.Date(2026, 12, 2, 19, 4, 5, 123456789, time.FixedZone("", 3600))))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	return e
}

func TestBatchAppendJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Batch
	}{
		{name: "empty", b: Batch{Entries: []Entry{}}},
		{name: "every-field", b: Batch{Entries: []Entry{everyField(t)}, Next: 7, Dropped: 3}},
		{name: "zero-entry", b: Batch{Entries: []Entry{{}, {Path: "/", ResponseCode: 200}}, Next: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.b.AppendJSON(nil)
			if !json.Valid(out) {
				t.Fatalf("not JSON: %s", out)
			}
			want, err := json.Marshal(&tc.b)
			if err != nil {
				t.Fatal(err)
			}
			var got, exp Batch
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &exp); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("decoded\n%+v\nwant (as encoding/json's)\n%+v", got, exp)
			}
		})
	}
}

func BenchmarkBatchAppendJSON(b *testing.B) {
	e := Entry{Start: time.Now(), Duration: 1234567, Protocol: ProtocolHTTP, HTTPVersion: "HTTP/1.1", Direction: Inbound,
		SourcePrincipal: "spiffe://cluster.local/ns/bench/sa/client", DestinationPrincipal: "spiffe://cluster.local/ns/bench/sa/backend",
		SourceWorkload: "client", SourceNamespace: "bench", DestinationWorkload: "backend", DestinationNamespace: "bench",
		MTLS: true, Method: "GET", Path: "/", Authority: "backend.bench:8080", UserAgent: "fortio.org/fortio-1.68.2",
		ResponseCode: 200, BytesSent: 108, Decision: "ALLOW", UpstreamHost: "127.0.0.1:18080", DownstreamRemote: "127.0.0.1:40000"}
	batch := Batch{Next: 1025}
	for range 1024 {
		batch.Entries = append(batch.Entries, e)
	}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = batch.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding-json-indent", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			enc.Encode(&batch) //nolint:errcheck
		}
	})
}
