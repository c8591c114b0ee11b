package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

type durations struct {
	rate, max, newconn time.Duration
	tcpBytes           int64
	idleConns          int
}

type env struct {
	work, binDir, root          string
	fortio, ghostunnel, haproxy string
	nginx                       string
	jwt                         *jwtMinter
	quick                       bool
	d                           durations
	skipReason                  map[string]string // path → why it was not measured
}

func (e *env) bin(name string) string { return filepath.Join(e.binDir, name) }

type backendAddrs struct{ HTTP, TCP string }

// pathResult is everything measured through one path.
type pathResult struct {
	Name, Title string
	Load        map[string]*loadResult // by loadTest.Name
	TCPMiBs     float64
	TCPUse      usage
	IdleKB      []int64 // VmRSS of client, server side right after start
	ConnsKB     []int64 // VmRSS with the idle connections held
	Err         string
	// Netns is the network namespace the load runs from ("" for this
	// one): the captured path's client namespace.
	Netns string
}

type report struct {
	Quick    bool
	Started  time.Time
	Elapsed  time.Duration
	Machine  machine
	D        durations
	Paths    []*pathResult
	Scale    *scaleResult
	ScaleErr string
	Micro    []microResult
	MicroRaw string
	MicroErr string
	Profile  string
}

func runSuite(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "short runs and a smaller control-plane scale: proves the harness end to end")
	out := fs.String("out", "BENCHMARKS.md", "report to write")
	binDir := fs.String("bin", "bin", "directory holding palisade and palisade-proxy")
	fortio := fs.String("fortio", "", "fortio binary (required)")
	gt := fs.String("ghostunnel", "", "ghostunnel binary (empty: not measured)")
	hp := fs.String("haproxy", "", "haproxy binary (empty: not measured)")
	ngx := fs.String("nginx", "", "nginx binary (empty: not measured)")
	work := fs.String("work", "", "work directory (default: a new temporary one)")
	skipMicro := fs.Bool("skip-micro", false, "do not run the Go micro-benchmarks")
	root := fs.String("root", ".", "the module's root directory (for go test)")
	only := fs.String("only", "", "comma-separated parts to run, for working on one (direct, palisade, palisade-authz, palisade-jwt, palisade-captured, ghostunnel, haproxy, nginx, scale, micro); the report then has gaps")
	if err := fs.Parse(args); err != nil {
		return err
	}
	want := func(part string) bool {
		return *only == "" || slices.Contains(strings.Split(*only, ","), part)
	}
	if *fortio == "" {
		return errors.New("-fortio is required")
	}
	e := &env{binDir: *binDir, root: *root, fortio: *fortio, ghostunnel: *gt, haproxy: *hp, nginx: *ngx, quick: *quick, skipReason: map[string]string{}}
	for _, p := range []*string{&e.binDir, &e.root, &e.fortio, &e.ghostunnel, &e.haproxy, &e.nginx} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	e.d = durations{rate: 15 * time.Second, max: 8 * time.Second, newconn: 8 * time.Second, tcpBytes: 1 << 30, idleConns: 1000}
	if e.quick {
		e.d = durations{rate: 2 * time.Second, max: time.Second, newconn: time.Second, tcpBytes: 32 << 20, idleConns: 1000}
	}
	if *work == "" {
		dir, err := os.MkdirTemp("", "meshbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*work = dir
	}
	e.work = *work
	var err error
	if e.jwt, err = newJWTMinter(); err != nil {
		return err
	}
	rep := &report{Quick: e.quick, Started: time.Now(), Machine: describeMachine(), D: e.d}

	be, backend, err := startBackend(e)
	if err != nil {
		return err
	}
	defer backend.stop()
	log.Printf("backend: http %s, tcp %s", be.HTTP, be.TCP)

	// Direct: the floor.
	direct := &pathResult{Name: "direct", Title: "direct (client → backend)"}
	rep.Paths = append(rep.Paths, direct)
	if want("direct") {
		measurePath(ctx, e, direct, be.HTTP, be.TCP, "", nil, nil)
	}

	for i, sc := range scenarios {
		if !want(sc.Name) {
			continue
		}
		pr := &pathResult{Name: sc.Name, Title: sc.Title}
		rep.Paths = append(rep.Paths, pr)
		log.Printf("%s: starting control plane and two sidecars", sc.Title)
		m, err := startPalisade(ctx, e, sc, be)
		if err != nil {
			pr.Err = err.Error()
			log.Printf("%s: %v", sc.Title, err)
			continue
		}
		tcp := ""
		if i == 0 {
			// Memory on a mesh of its own, so held connections leave no
			// trace in the load runs' figures.
			measureIdle(e, pr, m.HTTP, firstHeader(sc, e.jwt), m.pids())
			m.stop()
			if m, err = startPalisade(ctx, e, sc, be); err != nil {
				pr.Err = err.Error()
				continue
			}
			tcp = m.TCP
		}
		measurePath(ctx, e, pr, m.HTTP, tcp, firstHeader(sc, e.jwt), m.pids(), m.pids())
		if i == 0 {
			log.Printf("%s: CPU profiles of both sidecars under the keep-alive load (not a measured run)", sc.Title)
			prof, err := profileSidecars(ctx, e, m, firstHeader(sc, e.jwt))
			if err != nil {
				prof = "Not taken: " + err.Error()
			}
			rep.Profile = prof
		}
		m.stop()
	}

	if want(capturedName) {
		pr := &pathResult{Name: capturedName, Title: "Palisade, captured (iptables, as palisade up --isolate), no policy"}
		rep.Paths = append(rep.Paths, pr)
		log.Printf("%s: starting namespaces, control plane and two captured sidecars", pr.Title)
		measureCaptured(ctx, e, pr)
	}

	pc, err := writePeerCerts(e.work)
	if err != nil {
		return err
	}
	peers := []struct {
		name, title, bin string
		start            func(*env, *peerCerts, *backendAddrs) (*pair, error)
	}{
		{"ghostunnel", "ghostunnel pair (v1.8.4)", e.ghostunnel, startGhostunnel},
		{"haproxy", "HAProxy pair", e.haproxy, startHAProxy},
		{"nginx", "nginx pair", e.nginx, startNginx},
	}
	for _, p := range peers {
		if !want(p.name) {
			continue
		}
		pr := &pathResult{Name: p.name, Title: p.title}
		rep.Paths = append(rep.Paths, pr)
		if p.bin == "" {
			pr.Err = "not measured: no " + p.name + " binary was given"
			continue
		}
		log.Printf("%s: starting", p.title)
		pp, err := p.start(e, pc, be)
		if err != nil {
			pr.Err = "not measured: " + err.Error()
			log.Printf("%s: %v", p.title, err)
			continue
		}
		switch p.name {
		case "haproxy":
			pr.Title += " (" + haproxyVersion(p.bin) + ")"
		case "nginx":
			pr.Title += " (" + nginxVersion(p.bin) + ")"
		}
		measureIdle(e, pr, pp.HTTP, "", pp.pids())
		pp.stop()
		if pp, err = p.start(e, pc, be); err != nil {
			pr.Err = "not measured: " + err.Error()
			continue
		}
		measurePath(ctx, e, pr, pp.HTTP, pp.TCP, "", pp.pids(), pp.tcpPIDs())
		pp.stop()
	}
	backend.stop()

	if want("scale") {
		log.Printf("control plane at scale (in-process)")
		sp := scaleFull
		if e.quick {
			sp = scaleQuick
		}
		if rep.Scale, err = runScale(sp); err != nil {
			rep.ScaleErr = err.Error()
		}
	}
	if !*skipMicro && want("micro") {
		log.Printf("micro-benchmarks")
		rep.Micro, rep.MicroRaw, err = runMicro(ctx, e)
		if err != nil {
			rep.MicroErr = err.Error()
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	if err := os.WriteFile(*out, []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s in %s", *out, rep.Elapsed.Round(time.Second))
	return rep.sanity()
}

// sanity fails the run when a path that should have been measured was not.
func (r *report) sanity() error {
	var errs []error
	for _, p := range r.Paths {
		if p.Err != "" && (p.Name == "direct" || strings.HasPrefix(p.Name, "palisade")) && !strings.HasPrefix(p.Err, "not measured") {
			errs = append(errs, fmt.Errorf("%s: %s", p.Title, p.Err))
		}
	}
	if r.ScaleErr != "" {
		errs = append(errs, fmt.Errorf("control plane scale: %s", r.ScaleErr))
	}
	if r.MicroErr != "" {
		errs = append(errs, fmt.Errorf("micro-benchmarks: %s", r.MicroErr))
	}
	return errors.Join(errs...)
}

func startBackend(e *env) (*backendAddrs, *proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	be := &backendAddrs{HTTP: freeAddr(), TCP: freeAddr()}
	p, err := start("backend", e.work, []string{"GOMAXPROCS=" + fmt.Sprint(runtime.NumCPU())}, self, "backend", be.HTTP, be.TCP)
	if err != nil {
		return nil, nil, err
	}
	err = waitFor(10*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("backend exited: %s", p.tail())
		}
		c, err := net.Dial("tcp", be.HTTP)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		p.stop()
		return nil, nil, err
	}
	return be, p, nil
}

// measureIdle records the RSS of a freshly started pair, then with
// e.d.idleConns idle keep-alive connections through it.
func measureIdle(e *env, pr *pathResult, httpAddr, header string, pids []int) {
	for _, pid := range pids {
		kb, _ := statusKB(pid, "VmRSS")
		pr.IdleKB = append(pr.IdleKB, kb)
	}
	err := idleConns(httpAddr, e.d.idleConns, header, func() {
		for _, pid := range pids {
			kb, _ := statusKB(pid, "VmRSS")
			pr.ConnsKB = append(pr.ConnsKB, kb)
		}
	})
	if err != nil {
		log.Printf("%s: idle connections: %v", pr.Title, err)
		pr.ConnsKB = nil
	}
	time.Sleep(time.Second) // let the proxies close the held connections
}

func measurePath(ctx context.Context, e *env, pr *pathResult, httpAddr, tcpAddr, header string, pids, tcpPids []int) {
	pr.Load = map[string]*loadResult{}
	for _, lt := range loadTests {
		log.Printf("%s: %s", pr.Title, lt.Title)
		r, err := runFortioIn(ctx, e, pr.Netns, pr.Name+"-"+lt.Name, "http://"+httpAddr+"/", header, lt.Args(e.d), pids)
		if err != nil {
			log.Printf("%s: %v", pr.Title, err)
			pr.Err = err.Error()
			continue
		}
		pr.Load[lt.Name] = r
		time.Sleep(500 * time.Millisecond) // let TIME_WAIT and GC settle between runs
	}
	if tcpAddr != "" {
		m := startMeter(tcpPids)
		v, err := transfer(tcpAddr, e.d.tcpBytes)
		pr.TCPUse = m.stop()
		if err != nil {
			log.Printf("%s: tcp transfer: %v", pr.Title, err)
		} else {
			pr.TCPMiBs = v
		}
	}
}
