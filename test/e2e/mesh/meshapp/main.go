// Command meshapp is the workload the end-to-end tests run inside the
// mesh. It serves one protocol on 127.0.0.1:$PORT, as palisade up asks:
//
//	meshapp http   HTTP/1.1 and h2c; answers every request with what it saw
//	               (protocol, host, X-Forwarded-Client-Cert) as JSON, and
//	               calls other services from inside the mesh under /call/
//	meshapp grpc   gRPC's interop TestService (unary, server streaming,
//	               bidirectional streaming) with grpc-go
//	meshapp tcp    a TCP echo server
//
// Under /call/ the HTTP app is a client: /call/grpc?target=HOST:PORT runs
// the gRPC calls against a TestService with grpc-go (which reaches the
// sidecar through the proxy environment palisade up gives the app), and
// /call/tcp?target=HOST:PORT echoes bytes through a CONNECT tunnel to
// HTTP_PROXY.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: meshapp http|grpc|tcp")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	switch args[0] {
	case "http":
		return serveHTTP(ctx, ln)
	case "grpc":
		s := grpc.NewServer()
		testpb.RegisterTestServiceServer(s, testService{})
		go func() { <-ctx.Done(); s.Stop() }()
		return s.Serve(ln)
	case "tcp":
		return serveEcho(ctx, ln)
	}
	return fmt.Errorf("unknown mode %q", args[0])
}

// Seen is what the HTTP app reports about a request.
type Seen struct {
	Proto  string `json:"proto"`
	Method string `json:"method"`
	Host   string `json:"host"`
	Path   string `json:"path"`
	XFCC   string `json:"xfcc"`
}

func serveHTTP(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/call/grpc", func(w http.ResponseWriter, r *http.Request) {
		res, err := callGRPC(r.Context(), r.URL.Query().Get("target"))
		reply(w, res, err)
	})
	mux.HandleFunc("/call/tcp", func(w http.ResponseWriter, r *http.Request) {
		res, err := callTCP(r.URL.Query().Get("target"))
		reply(w, res, err)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, Seen{Proto: r.Proto, Method: r.Method, Host: r.Host, Path: r.URL.Path, XFCC: r.Header.Get("X-Forwarded-Client-Cert")}, nil)
	})
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protos, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()}) //nolint:errcheck
		return
	}
	json.NewEncoder(w).Encode(v) //nolint:errcheck
}

// GRPCResult is what /call/grpc saw.
type GRPCResult struct {
	Unary      string   `json:"unary"`      // the payload echoed back
	UnaryXFCC  string   `json:"unaryXfcc"`  // the XFCC the server saw
	Streamed   []int    `json:"streamed"`   // sizes of the server-streamed responses
	Bidi       []string `json:"bidi"`       // payloads echoed on the bidirectional stream
	ProxyEnvOK bool     `json:"proxyEnvOk"` // HTTPS_PROXY was set, so grpc-go used the sidecar
}

func callGRPC(ctx context.Context, target string) (*GRPCResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	res := &GRPCResult{ProxyEnvOK: os.Getenv("HTTPS_PROXY") != "" || os.Getenv("https_proxy") != ""}
	u, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello unary")}, FillUsername: true})
	if err != nil {
		return nil, fmt.Errorf("unary: %w", err)
	}
	res.Unary, res.UnaryXFCC = string(u.GetPayload().GetBody()), u.GetUsername()

	sizes := []int32{10, 200, 3000, 40000}
	req := &testpb.StreamingOutputCallRequest{}
	for _, s := range sizes {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: s})
	}
	ss, err := c.StreamingOutputCall(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("server streaming: %w", err)
	}
	for {
		m, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("server streaming: %w", err)
		}
		res.Streamed = append(res.Streamed, len(m.GetPayload().GetBody()))
	}

	bs, err := c.FullDuplexCall(ctx)
	if err != nil {
		return nil, fmt.Errorf("bidi: %w", err)
	}
	// Ping-pong: each message is answered before the next is sent, so the
	// stream is really full duplex through both sidecars.
	for i := range 5 {
		body := fmt.Sprintf("ping %d", i)
		if err := bs.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}}); err != nil {
			return nil, fmt.Errorf("bidi send: %w", err)
		}
		m, err := bs.Recv()
		if err != nil {
			return nil, fmt.Errorf("bidi recv: %w", err)
		}
		res.Bidi = append(res.Bidi, string(m.GetPayload().GetBody()))
	}
	if err := bs.CloseSend(); err != nil {
		return nil, err
	}
	if _, err := bs.Recv(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bidi: want EOF after close, got %v", err)
	}
	return res, nil
}

// TCPResult is what /call/tcp saw.
type TCPResult struct {
	Sent   string `json:"sent"`
	Echoed string `json:"echoed"`
}

// callTCP opens a CONNECT tunnel through HTTP_PROXY to target and checks
// that the echo server returns what it is sent.
func callTCP(target string) (*TCPResult, error) {
	pu, err := url.Parse(os.Getenv("HTTP_PROXY"))
	if err != nil || pu.Host == "" {
		return nil, fmt.Errorf("HTTP_PROXY %q: %v", os.Getenv("HTTP_PROXY"), err)
	}
	c, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	msg := "raw bytes \x00\x01\x02 through the mesh\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return nil, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil {
		return nil, err
	}
	return &TCPResult{Sent: msg, Echoed: string(got)}, nil
}

type testService struct {
	testpb.UnimplementedTestServiceServer
}

func xfccOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return strings.Join(md.Get("x-forwarded-client-cert"), ",")
}

func (testService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	out := &testpb.SimpleResponse{Payload: in.GetPayload()}
	if in.GetFillUsername() {
		out.Username = xfccOf(ctx)
	}
	return out, nil
}

func (testService) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, s grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range in.GetResponseParameters() {
		body := make([]byte, p.GetSize())
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

func (testService) FullDuplexCall(s grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		in, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: in.GetPayload()}); err != nil {
			return err
		}
	}
}

func serveEcho(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			io.Copy(c, c) //nolint:errcheck
		}()
	}
}
