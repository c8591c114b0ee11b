package telemetry

import (
	"strconv"
	"time"
)

// AppendJSON appends b as JSON to dst: the document encoding/json makes
// of it, less the fields of each entry that hold their zero value, which
// a decoder leaves zero anyway. The control plane reads a busy sidecar's
// ring several times a second, so the encoding is written out by hand
// rather than walked by reflection; a test holds it to encoding/json's
// field for field.
func (b *Batch) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"entries":[`...)
	for i := range b.Entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = b.Entries[i].appendJSON(dst)
	}
	dst = append(dst, `],"next":`...)
	dst = strconv.AppendUint(dst, b.Next, 10)
	dst = append(dst, `,"dropped":`...)
	dst = strconv.AppendUint(dst, b.Dropped, 10)
	return append(dst, '}')
}

// appendJSON appends e as a JSON object of its non-zero fields.
func (e *Entry) appendJSON(dst []byte) []byte {
	w := jsonObject{dst: append(dst, '{')}
	if !e.Start.IsZero() {
		w.key("Start")
		w.dst = append(w.dst, '"')
		w.dst = e.Start.AppendFormat(w.dst, time.RFC3339Nano)
		w.dst = append(w.dst, '"')
	}
	w.int("Duration", int64(e.Duration))
	w.str("Protocol", e.Protocol)
	w.str("HTTPVersion", e.HTTPVersion)
	w.str("Direction", e.Direction)
	w.str("Reporter", e.Reporter)
	w.str("SourcePrincipal", e.SourcePrincipal)
	w.str("DestinationPrincipal", e.DestinationPrincipal)
	w.str("SourceWorkload", e.SourceWorkload)
	w.str("SourceNamespace", e.SourceNamespace)
	w.str("SourceApp", e.SourceApp)
	w.str("SourceVersion", e.SourceVersion)
	w.str("DestinationWorkload", e.DestinationWorkload)
	w.str("DestinationNamespace", e.DestinationNamespace)
	w.str("DestinationApp", e.DestinationApp)
	w.str("DestinationVersion", e.DestinationVersion)
	w.str("SourceCanonicalService", e.SourceCanonicalService)
	w.str("SourceCanonicalRevision", e.SourceCanonicalRevision)
	w.str("DestinationCanonicalService", e.DestinationCanonicalService)
	w.str("DestinationCanonicalRevision", e.DestinationCanonicalRevision)
	w.str("SourceCluster", e.SourceCluster)
	w.str("DestinationCluster", e.DestinationCluster)
	w.str("DestinationService", e.DestinationService)
	w.str("DestinationServiceName", e.DestinationServiceName)
	w.str("DestinationServiceNamespace", e.DestinationServiceNamespace)
	if e.MTLS {
		w.key("MTLS")
		w.dst = append(w.dst, "true"...)
	}
	w.str("Method", e.Method)
	w.str("Path", e.Path)
	w.str("Authority", e.Authority)
	w.str("UserAgent", e.UserAgent)
	w.str("RequestID", e.RequestID)
	w.str("ForwardedFor", e.ForwardedFor)
	w.int("ResponseCode", int64(e.ResponseCode))
	w.str("GRPCStatus", e.GRPCStatus)
	w.str("ResponseFlags", e.ResponseFlags)
	w.int("BytesReceived", e.BytesReceived)
	w.int("BytesSent", e.BytesSent)
	w.str("Decision", e.Decision)
	w.str("Policy", e.Policy)
	w.str("AuthError", e.AuthError)
	w.str("RequestPrincipal", e.RequestPrincipal)
	w.int("DestinationPort", int64(e.DestinationPort))
	w.str("UpstreamHost", e.UpstreamHost)
	w.str("UpstreamCluster", e.UpstreamCluster)
	w.str("DownstreamRemote", e.DownstreamRemote)
	return append(w.dst, '}')
}

// jsonObject appends the members of one JSON object.
type jsonObject struct {
	dst  []byte
	more bool
}

// key appends a member's name; names are plain ASCII.
func (w *jsonObject) key(k string) {
	if w.more {
		w.dst = append(w.dst, ',')
	}
	w.more = true
	w.dst = append(w.dst, '"')
	w.dst = append(w.dst, k...)
	w.dst = append(w.dst, '"', ':')
}

func (w *jsonObject) str(k, v string) {
	if v == "" {
		return
	}
	w.key(k)
	w.dst = appendJSONString(w.dst, v)
}

func (w *jsonObject) int(k string, v int64) {
	if v == 0 {
		return
	}
	w.key(k)
	w.dst = strconv.AppendInt(w.dst, v, 10)
}
