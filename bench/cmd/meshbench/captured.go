package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"palisade.dev/palisade/internal/netns"
)

// The captured pair: the same two sidecars, control plane and backend as
// the "palisade" path, but each workload in a network namespace of its
// own with palisade-proxy init's rules (palisade up --isolate's path). The
// load generator runs in the client's namespace and calls the backend's
// address as a plain app would; iptables hands the connection to the
// client's sidecar.

const capturedName = "palisade-captured"

// capturedYAML is baseYAML with each workload's address.
func capturedYAML(backend, client netip.Addr) string {
	y := strings.Replace(baseYAML, "  serviceAccount: backend\n", "  serviceAccount: backend\n  address: "+backend.String()+"\n", 1)
	return strings.Replace(y, "  serviceAccount: client\n", "  serviceAccount: client\n  address: "+client.String()+"\n", 1)
}

type capturedMesh struct {
	topo                        *netns.Topology
	record                      string
	cp, backend, server, client *proc
	clientNS                    netns.Namespace
	http                        string
}

func (c *capturedMesh) pids() []int { return []int{c.client.pid(), c.server.pid()} }

func (c *capturedMesh) stop() {
	for _, p := range []*proc{c.client, c.server, c.backend, c.cp} {
		p.stop()
	}
	if c.topo != nil {
		if err := c.topo.Destroy(context.Background(), c.record); err != nil {
			log.Printf("%s: remove the namespaces: %v", capturedName, err)
		}
	}
}

// measureCaptured measures the captured pair, when this runs as root.
func measureCaptured(ctx context.Context, e *env, pr *pathResult) {
	if os.Geteuid() != 0 {
		pr.Err = "not measured: the captured path needs root (network namespaces, iptables)"
		return
	}
	c, err := startCaptured(ctx, e)
	if err != nil {
		pr.Err = err.Error()
		log.Printf("%s: %v", pr.Title, err)
		return
	}
	defer c.stop()
	pr.Netns = string(c.clientNS)
	measurePath(ctx, e, pr, c.http, "", "", c.pids(), nil)
}

func inNS(n netns.Namespace, asProxy bool, bin string, args ...string) []string {
	a := []string{"netns", "exec", string(n)}
	if asProxy {
		a = append(a, "setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups")
	}
	return append(append(a, bin), args...)
}

func startCaptured(ctx context.Context, e *env) (_ *capturedMesh, err error) {
	dir := filepath.Join(e.work, capturedName)
	cfg, state := filepath.Join(dir, "config"), filepath.Join(dir, "state")
	for _, d := range []string{cfg, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// The sidecars run as uid 1337 and read the bundle in dir.
	for _, d := range []string{e.work, dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	c := &capturedMesh{record: filepath.Join(dir, "netns.json")}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	c.topo, err = netns.Create(ctx, netns.Plan{Prefix: fmt.Sprintf("pal-b%d", os.Getpid()%100000), Hosts: 1,
		Workloads: []string{"bench/backend", "bench/client"}}, c.record)
	if err != nil {
		return c, err
	}
	be, cl := c.topo.Workloads[0], c.topo.Workloads[1]
	c.clientNS, c.http = cl.NS, be.Addr.String()+":8080"
	if err := os.WriteFile(filepath.Join(cfg, "mesh.yaml"), []byte(meshYAML), 0o644); err != nil {
		return c, err
	}
	if err := os.WriteFile(filepath.Join(cfg, "bench.yaml"), []byte(capturedYAML(be.Addr, cl.Addr)), 0o644); err != nil {
		return c, err
	}
	cpAddr := c.topo.ControlPlane.Addr.String() + ":15012"
	c.cp, err = start(capturedName+"-control-plane", dir, nil, "ip", inNS(c.topo.ControlPlane.NS, false, e.bin("palisade"),
		"control-plane", "--config", cfg, "--state", state, "--listen", cpAddr, "--admin", "127.0.0.1:15014")...)
	if err != nil {
		return c, err
	}
	bundle := filepath.Join(dir, "root-cert.pem")
	if err := waitBundle(c.cp, state, bundle); err != nil {
		return c, err
	}
	for _, w := range []netns.Workload{be, cl} {
		var out bytes.Buffer
		if err := run(ctx, dir, &out, nil, "ip", inNS(w.NS, false, e.bin("palisade-proxy"), "init")...); err != nil {
			return c, fmt.Errorf("palisade-proxy init in %s: %v: %s", w.NS, err, out.String())
		}
	}
	self, err := os.Executable()
	if err != nil {
		return c, err
	}
	c.backend, err = start(capturedName+"-backend", dir, []string{"GOMAXPROCS=" + fmt.Sprint(runtime.NumCPU())}, "ip",
		inNS(be.NS, false, self, "backend", "127.0.0.1:8080", "127.0.0.1:9000")...)
	if err != nil {
		return c, err
	}
	common := []string{"--control-plane", cpAddr, "--bundle", bundle, "--access-log", "", "--pprof", "--capture", "--admin", "127.0.0.1:15000"}
	for _, s := range []struct {
		w    netns.Workload
		p    **proc
		name string
		args []string
	}{
		{be, &c.server, "server", []string{"--workload", "bench/backend", "--service-account", "backend", "--label", "app=backend",
			"--inbound", "port=8080,name=http,protocol=HTTP", "--inbound", "port=9000,name=tcp,protocol=TCP"}},
		{cl, &c.client, "client", []string{"--workload", "bench/client", "--service-account", "client", "--label", "app=client",
			"--inbound", "port=8080,name=http,protocol=HTTP"}},
	} {
		tok, err := joinToken(ctx, e, dir, state, strings.TrimPrefix(s.w.Name, "bench/"))
		if err != nil {
			return c, err
		}
		*s.p, err = start(capturedName+"-"+s.name+"-sidecar", dir, []string{"PALISADE_JOIN_TOKEN=" + tok}, "ip",
			inNS(s.w.NS, true, e.bin("palisade-proxy"), append(s.args, common...)...)...)
		if err != nil {
			return c, err
		}
	}
	err = waitFor(30*time.Second, func() error {
		for _, p := range []*proc{c.cp, c.backend, c.server, c.client} {
			if p.exited() {
				return fmt.Errorf("%s exited: %s", p.name, p.tail())
			}
		}
		var out bytes.Buffer
		if err := run(ctx, dir, &out, nil, "ip", inNS(cl.NS, false, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
			"-m", "2", "-H", "Host: backend.bench:8080", "http://"+c.http+"/")...); err != nil || out.String() != "200" {
			return fmt.Errorf("GET http://%s/ from the client's namespace: %q %v", c.http, out.String(), err)
		}
		return nil
	})
	return c, err
}

// waitBundle waits for the control plane's roots and writes them to
// bundle, as startPalisade does.
func waitBundle(cp *proc, state, bundle string) error {
	return waitFor(20*time.Second, func() error {
		if cp.exited() {
			return fmt.Errorf("control plane exited: %s", cp.tail())
		}
		if _, err := os.Stat(filepath.Join(state, "control.sock")); err != nil {
			return err
		}
		roots, _ := filepath.Glob(filepath.Join(state, "ca", "roots", "*", "root-cert.pem"))
		if len(roots) == 0 {
			return errors.New("no root certificate yet")
		}
		var pem []byte
		for _, r := range roots {
			b, err := os.ReadFile(r)
			if err != nil {
				return err
			}
			pem = append(pem, b...)
		}
		return os.WriteFile(bundle, pem, 0o644)
	})
}

func joinToken(ctx context.Context, e *env, dir, state, sa string) (string, error) {
	var out bytes.Buffer
	if err := run(ctx, dir, &out, nil, e.bin("palisade"), "join-token", "--state", state, "--namespace", "bench", "--service-account", sa); err != nil {
		return "", fmt.Errorf("join-token: %v: %s", err, out.String())
	}
	return strings.TrimSpace(out.String()), nil
}
