package proxy_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"palisade.dev/palisade/internal/proxy"
)

// raiseFileLimit lifts RLIMIT_NOFILE to n for this process, or skips
// the test (fails under CI=true) when it cannot.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	old := lim
	lim.Cur = n
	if lim.Max < n {
		lim.Max = n // root may raise the hard limit too
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		msg := fmt.Sprintf("cannot raise the open file limit to %d (now %d/%d): %v", n, old.Cur, old.Max, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// skipUnderRace skips a load test in a -race build: the race detector
// allows 8128 live goroutines, and slows handshakes tenfold. make load
// runs them without it.
func skipUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("a load test: run without -race (make load)")
	}
}

// memStats is the process's memory, for the figures a load test logs.
type memStats struct{ heap, sys, rss uint64 }

func readMem() memStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memStats{heap: ms.HeapInuse, sys: ms.Sys}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				m.rss = kb << 10
			}
		}
	}
	return m
}

// roundTrip sends one keep-alive GET on c and reads the answer.
func roundTrip(c net.Conn, br *bufio.Reader, path string) (int, error) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: productcatalog\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// parallel runs f(i) for i in [0, n) on workers goroutines and returns
// the errors, each once.
func parallel(n, workers int, f func(i int) error) []error {
	var (
		next atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%d: %w", i, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// TestTenThousandConnections holds 10,000 keep-alive connections open
// through one sidecar at once, each answered before and after all are
// open: none is refused (no connection limit is set) and the memory they
// cost is logged. The clients run in a child process, so that each side
// has its own open file limit.
func TestTenThousandConnections(t *testing.T) {
	const n = 10000
	skipUnderRace(t)
	raiseFileLimit(t, n+4096)
	m := newTestMesh(t)
	a := newRecordingApp(t)
	sc := m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: a.addr}}, false)
	before := readMem()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadClients$")
	cmd.Env = append(os.Environ(), "PALISADE_LOAD_ADDR="+sc.Options().Inbound[0].Listen, "PALISADE_LOAD_CONNS="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck
	lines := bufio.NewScanner(stdout)
	expect := func(prefix string) string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("the clients ended before %q: %v", prefix, cmd.Wait())
		return ""
	}
	first := expect("opened ")
	held := readMem()
	io.WriteString(stdin, "again\n") //nolint:errcheck
	second := expect("answered ")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("clients: %v", err)
	}
	t.Log("clients: " + first)
	t.Log("clients: " + second)
	t.Logf("memory of the sidecar's process (sidecar and app) with %d connections held: heap in use %d MiB (+%d KiB a connection), RSS %d MiB (+%d KiB a connection)",
		n, held.heap>>20, int64(held.heap-before.heap)/n>>10, held.rss>>20, int64(held.rss-before.rss)/n>>10)
}

// TestLoadClients is TestTenThousandConnections' client process; it
// runs only when started by it.
func TestLoadClients(t *testing.T) {
	addr := os.Getenv("PALISADE_LOAD_ADDR")
	if addr == "" {
		t.Skip("the client side of TestTenThousandConnections")
	}
	n, _ := strconv.Atoi(os.Getenv("PALISADE_LOAD_CONNS"))
	raiseFileLimit(t, uint64(n)+1024)
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	start := time.Now()
	errs := parallel(n, 64, func(i int) error {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		conns[i], readers[i] = c, bufio.NewReader(c)
		code, err := roundTrip(c, readers[i], "/first")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d connections failed; first: %v", len(errs), n, errs[0])
	}
	fmt.Printf("opened %d connections, each answered, in %v; 0 refused, 0 failed\n", n, time.Since(start).Round(time.Millisecond))
	bufio.NewReader(os.Stdin).ReadString('\n') //nolint:errcheck
	start = time.Now()
	errs = parallel(n, 64, func(i int) error {
		code, err := roundTrip(conns[i], readers[i], "/second")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d held connections failed their second request; first: %v", len(errs), n, errs[0])
	}
	fmt.Printf("answered all %d held connections again in %v; 0 failed\n", n, time.Since(start).Round(time.Millisecond))
	for _, c := range conns {
		c.Close()
	}
}

// TestMTLSConnectionBurst opens 5,000 new mTLS connections to a STRICT
// sidecar as fast as 256 clients can, each with one request: none is
// refused.
func TestMTLSConnectionBurst(t *testing.T) {
	const n = 5000
	skipUnderRace(t)
	raiseFileLimit(t, 4096*4)
	m := newTestMesh(t)
	m.write("pa.yaml", strictMesh)
	m.reload()
	a := newRecordingApp(t)
	sc := m.sidecar("productcatalog", "productcatalog-sa", m.ca.issue(t, catalogID),
		[]proxy.InboundPort{{Port: 5000, Name: "http", Protocol: proxy.ProtoHTTP, Listen: "127.0.0.1:0", App: a.addr}}, false)
	addr := sc.Options().Inbound[0].Listen
	cert := m.ca.issue(t, frontendID)
	cfg := &tls.Config{Certificates: []tls.Certificate{*cert}, RootCAs: m.roots, ServerName: "productcatalog", NextProtos: []string{"http/1.1"},
		InsecureSkipVerify: true, // the peer's SPIFFE ID is checked below, as a sidecar checks it
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || len(cs.PeerCertificates[0].URIs) != 1 || cs.PeerCertificates[0].URIs[0].String() != catalogID {
				return fmt.Errorf("server is not %s", catalogID)
			}
			return nil
		}}
	before := readMem()
	var worst atomic.Int64
	start := time.Now()
	errs := parallel(n, 256, func(i int) error {
		t0 := time.Now()
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		code, err := roundTrip(c, bufio.NewReader(c), "/burst")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		if d := time.Since(t0); int64(d) > worst.Load() {
			worst.Store(int64(d))
		}
		return err
	})
	took := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d of %d mTLS connections failed; first: %v", len(errs), n, errs[0])
	}
	after := readMem()
	t.Logf("%d new mTLS connections (ECDSA P-256, TLS 1.3) with one request each in %v: %.0f handshakes/s, slowest %v; 0 refused, 0 failed",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), time.Duration(worst.Load()).Round(time.Millisecond))
	t.Logf("memory of the process after the burst: heap in use %d MiB (was %d), RSS %d MiB (was %d)", after.heap>>20, before.heap>>20, after.rss>>20, before.rss>>20)
}
