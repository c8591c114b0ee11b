package main

import (
	"encoding/json"
	"net/http"
)

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error  string `json:"error"`
	Caller string `json:"caller"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Caller: caller(r)})
}

// pingBody answers GET /ping on every service.
type pingBody struct {
	Status  string `json:"status"`
	Service string `json:"service"`
	Caller  string `json:"caller"`
}

func pingHandler(service string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, pingBody{Status: "ok", Service: service, Caller: caller(r)})
	}
}

// propagated are the request headers a service copies onto the calls it
// makes, so a request can be followed across the mesh.
var propagated = []string{
	"X-Request-Id", "Traceparent", "Tracestate",
	"X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags", "B3",
}

func propagate(dst, src http.Header) {
	for _, h := range propagated {
		if v := src.Get(h); v != "" {
			dst.Set(h, v)
		}
	}
}
