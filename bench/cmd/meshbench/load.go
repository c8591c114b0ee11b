package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// loadTest is one fortio run shape.
type loadTest struct {
	Name  string
	Title string
	Args  func(d durations) []string
}

var loadTests = []loadTest{
	{Name: "rate", Title: "1,000 rps fixed rate, 16 keep-alive connections",
		Args: func(d durations) []string { return []string{"-qps", "1000", "-c", "16", "-t", d.rate.String()} }},
	{Name: "max", Title: "max throughput, 64 keep-alive connections",
		Args: func(d durations) []string { return []string{"-qps", "0", "-c", "64", "-t", d.max.String()} }},
	{Name: "newconn", Title: "max throughput, new connection per request, 16 clients",
		Args: func(d durations) []string {
			return []string{"-qps", "0", "-c", "16", "-keepalive=false", "-t", d.newconn.String()}
		}},
}

// loadResult is what one fortio run measured, plus what the proxies used.
type loadResult struct {
	QPS           float64
	P50, P90, P99 float64 // seconds
	Requests, OK  int64
	Duration      time.Duration
	Use           usage
	Codes         map[string]int64 // response code → count, as fortio reports
}

type fortioJSON struct {
	ActualQPS         float64
	ActualDuration    int64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct{ Percentile, Value float64 }
	}
	RetCodes map[string]int64
}

// runFortio loads url with the given shape while metering pids.
func runFortio(ctx context.Context, e *env, tag, url, header string, args []string, pids []int) (*loadResult, error) {
	return runFortioIn(ctx, e, "", tag, url, header, args, pids)
}

// runFortioIn is runFortio from inside network namespace ns ("" for this
// one).
func runFortioIn(ctx context.Context, e *env, ns, tag, url, header string, args []string, pids []int) (*loadResult, error) {
	out := filepath.Join(e.work, "fortio-"+tag+".json")
	a := []string{"load", "-json", out, "-p", "50,90,99", "-loglevel", "Error", "-timeout", "5s", "-H", "Host: backend.bench:8080"}
	if header != "" {
		a = append(a, "-H", header)
	}
	a = append(a, args...)
	a = append(a, url)
	var log bytes.Buffer
	m := startMeter(pids)
	bin := e.fortio
	if ns != "" {
		bin, a = "ip", append([]string{"netns", "exec", ns, e.fortio}, a...)
	}
	err := run(ctx, e.work, &log, nil, bin, a...)
	u := m.stop()
	if err != nil {
		return nil, fmt.Errorf("fortio %s: %v: %s", tag, err, tailOf(log.String()))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var fj fortioJSON
	if err := json.Unmarshal(b, &fj); err != nil {
		return nil, fmt.Errorf("fortio %s: %w", tag, err)
	}
	r := &loadResult{QPS: fj.ActualQPS, Requests: fj.DurationHistogram.Count, OK: fj.RetCodes["200"], Duration: time.Duration(fj.ActualDuration), Use: u, Codes: fj.RetCodes}
	for _, p := range fj.DurationHistogram.Percentiles {
		switch p.Percentile {
		case 50:
			r.P50 = p.Value
		case 90:
			r.P90 = p.Value
		case 99:
			r.P99 = p.Value
		}
	}
	if r.Requests == 0 {
		return nil, fmt.Errorf("fortio %s: no requests completed: %s", tag, tailOf(log.String()))
	}
	return r, nil
}

func tailOf(s string) string {
	if len(s) > 1500 {
		return s[len(s)-1500:]
	}
	return s
}

// idleConns opens n keep-alive HTTP connections to addr, sends one
// request on each so every hop is set up, and holds them while measure
// runs.
func idleConns(addr string, n int, header string, measure func()) error {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := "GET / HTTP/1.1\r\nHost: backend.bench:8080\r\n"
	if header != "" {
		req += header + "\r\n"
	}
	req += "\r\n"
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte(req)); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		if len(line) < 12 || line[9:12] != "200" {
			return fmt.Errorf("connection %d: %q", i, line)
		}
		// Drain the small response so the connection is idle.
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if l == "\r\n" {
				break
			}
		}
		if _, err := io.ReadFull(br, make([]byte, len(backendBody))); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	time.Sleep(time.Second)
	measure()
	return nil
}

func ms(sec float64) string { return strconv.FormatFloat(sec*1000, 'f', 3, 64) }
