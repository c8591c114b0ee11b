package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"palisade.dev/palisade/internal/capture"
)

// initFlags is `palisade-proxy init`: istio-iptables' command line, short
// and long names, the defaults Istio's injector passes.
type initFlags struct {
	cfg     capture.Config
	dryRun  bool
	cleanup bool
	backend capture.Backend
}

// stringFlag binds one string to a short and a long flag name.
func stringFlag(fs *flag.FlagSet, p *string, short, long, value, usage string) {
	*p = value
	if short != "" {
		fs.StringVar(p, short, value, usage+" (short for --"+long+")")
	}
	fs.StringVar(p, long, value, usage)
}

func parseInitFlags(args []string, stderr io.Writer, getenv func(string) string) (*initFlags, error) {
	fs := flag.NewFlagSet("palisade-proxy init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := capture.Default()
	var proxyPort, inPort, tunnelPort, uid, gid, mode, inPorts, inExclude, excludeIfs, outRanges, outExclude,
		outPorts, outPortsExclude, virtIfs, mark, table, backend string
	stringFlag(fs, &proxyPort, "p", "envoy-port", "15001", "port all outbound TCP goes to")
	stringFlag(fs, &inPort, "z", "inbound-capture-port", "15006", "port all inbound TCP goes to")
	stringFlag(fs, &tunnelPort, "e", "inbound-tunnel-port", "15008", "the tunnel port, never captured")
	stringFlag(fs, &uid, "u", "proxy-uid", "1337", "uid(s) of the proxy, whose traffic is not captured")
	stringFlag(fs, &gid, "g", "proxy-gid", "", "gid(s) of the proxy (default: the uids)")
	stringFlag(fs, &mode, "m", "istio-inbound-interception-mode", string(capture.Redirect), "REDIRECT or TPROXY")
	stringFlag(fs, &inPorts, "b", "istio-inbound-ports", "*", `inbound ports to capture, "*" for all, "" for none`)
	stringFlag(fs, &inExclude, "d", "istio-local-exclude-ports", "15090,15021,15020", `inbound ports not captured (with -b "*")`)
	stringFlag(fs, &excludeIfs, "c", "istio-exclude-interfaces", "", "interfaces never captured")
	stringFlag(fs, &outRanges, "i", "istio-service-cidr", "*", `outbound ranges to capture, "*" for all, "" for none`)
	stringFlag(fs, &outExclude, "x", "istio-service-exclude-cidr", "", "outbound ranges not captured")
	stringFlag(fs, &outPorts, "q", "istio-outbound-ports", "", "outbound ports always captured")
	stringFlag(fs, &outPortsExclude, "o", "istio-local-outbound-ports-exclude", "", "outbound ports never captured")
	stringFlag(fs, &virtIfs, "k", "kube-virt-interfaces", "", "interfaces whose inbound traffic is treated as outbound")
	stringFlag(fs, &mark, "t", "istio-inbound-tproxy-mark", "1337", "TPROXY packet mark")
	stringFlag(fs, &table, "r", "istio-inbound-tproxy-route-table", "133", "TPROXY routing table")
	stringFlag(fs, &backend, "", "iptables-backend", string(capture.Auto), "auto, nft or legacy")
	f := &initFlags{}
	fs.BoolVar(&f.dryRun, "n", false, "print the rules instead of applying them (short for --dry-run)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the rules instead of applying them")
	fs.BoolVar(&f.cleanup, "cleanup", false, "remove the rules these flags add, and nothing else")
	fs.BoolVar(&f.cleanup, "cleanup-only", false, "the same as --cleanup (istio-iptables' name)")
	dnsDefault := envBool(getenv("ISTIO_META_DNS_CAPTURE"))
	fs.BoolVar(&d.RedirectDNS, "redirect-dns", dnsDefault, "send the app's DNS to the sidecar's resolver on 15053 (env ISTIO_META_DNS_CAPTURE)")
	fs.BoolVar(&d.CaptureAllDNS, "capture-all-dns", false, "with --redirect-dns: all DNS, not only to resolv.conf's servers")
	fs.BoolVar(&d.DropInvalid, "drop-invalid", envBool(getenv("INVALID_DROP")), "drop out-of-window packets instead of resetting (env INVALID_DROP)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("init: unexpected arguments %q", fs.Args())
	}
	var errs []error
	port := func(name, s string) uint16 {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			errs = append(errs, fmt.Errorf("init: --%s %q: want a port 1-65535", name, s))
		}
		return uint16(n)
	}
	portList := func(name, s string, wildcard bool) capture.Ports {
		p, err := capture.ParsePorts(s)
		if err != nil || p.All && !wildcard {
			errs = append(errs, fmt.Errorf("init: --%s %q: want comma-separated ports", name, s))
		}
		return p
	}
	d.ProxyPort, d.InboundCapturePort, d.InboundTunnelPort = port("envoy-port", proxyPort), port("inbound-capture-port", inPort), port("inbound-tunnel-port", tunnelPort)
	d.ProxyUIDs, d.ProxyGIDs = fields(uid), fields(gid)
	d.Mode = capture.Mode(mode)
	d.InboundPorts = portList("istio-inbound-ports", inPorts, true)
	d.InboundPortsExclude = portList("istio-local-exclude-ports", inExclude, false).Ports
	d.OutboundPortsInclude = portList("istio-outbound-ports", outPorts, false).Ports
	d.OutboundPortsExclude = portList("istio-local-outbound-ports-exclude", outPortsExclude, false).Ports
	var err error
	if d.OutboundRanges, err = capture.ParseRanges(outRanges); err != nil {
		errs = append(errs, fmt.Errorf("init: --istio-service-cidr: %w", err))
	}
	if ex, err := capture.ParseRanges(outExclude); err != nil || ex.All {
		errs = append(errs, fmt.Errorf("init: --istio-service-exclude-cidr %q: want CIDRs (\"*\" would exclude everything)", outExclude))
	} else {
		d.OutboundRangesExclude = ex.CIDRs
	}
	d.ExcludeInterfaces, d.RerouteVirtualInterfaces = fields(excludeIfs), fields(virtIfs)
	if n, err := strconv.ParseUint(mark, 10, 32); err != nil {
		errs = append(errs, fmt.Errorf("init: --istio-inbound-tproxy-mark %q: want a number", mark))
	} else {
		d.TProxyMark = uint32(n)
	}
	if n, err := strconv.Atoi(table); err != nil || n <= 0 {
		errs = append(errs, fmt.Errorf("init: --istio-inbound-tproxy-route-table %q: want a table number", table))
	} else {
		d.TProxyRouteTable = n
	}
	if v := getenv("ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR"); v != "" {
		if d.HostLoopback, err = netip.ParsePrefix(v); err != nil {
			errs = append(errs, fmt.Errorf("init: ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: %w", err))
		}
	}
	if v := getenv("ISTIO_OUTBOUND_OWNER_GROUPS"); v != "" {
		d.OwnerGroupsInclude = v
	}
	d.OwnerGroupsExclude = getenv("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE")
	if f.backend, err = capture.ParseBackend(backend); err != nil {
		errs = append(errs, fmt.Errorf("init: --iptables-backend: %w", err))
	}
	if err := d.Validate(); err != nil {
		errs = append(errs, err)
	}
	f.cfg = d
	return f, errors.Join(errs...)
}

func fields(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func envBool(s string) bool {
	b, _ := strconv.ParseBool(s)
	return b
}

// runInit is `palisade-proxy init`: what the init container runs before a
// pod's sidecar and app start, in the pod's network namespace.
func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseInitFlags(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	log := newLogger("text", slog.LevelInfo, stderr)
	if f.cfg.RedirectDNS && !f.cfg.CaptureAllDNS {
		servers, err := resolvConfServers("/etc/resolv.conf")
		if err != nil {
			return fmt.Errorf("init: --redirect-dns: %w", err)
		}
		f.cfg.DNSServers = servers
		if len(servers) == 0 {
			log.Warn("--redirect-dns without --capture-all-dns and no IPv4 nameserver in /etc/resolv.conf: DNS is not captured")
		}
	}
	set, err := capture.Build(f.cfg)
	if err != nil {
		return err
	}
	if f.dryRun {
		_, err := io.WriteString(stdout, set.Restore())
		return err
	}
	r := capture.Exec{}
	backend, err := capture.Detect(ctx, r, f.backend)
	if err != nil {
		return err
	}
	if f.cleanup {
		if err := capture.Cleanup(ctx, r, backend, set); err != nil {
			return err
		}
		log.Info("capture rules removed", "backend", backend)
		return nil
	}
	if err := capture.Apply(ctx, r, backend, set); err != nil {
		return err
	}
	log.Info("capture rules applied", slog.String("backend", string(backend)),
		slog.Int("outbound", int(f.cfg.ProxyPort)), slog.Int("inbound", int(f.cfg.InboundCapturePort)))
	return nil
}

// resolvConfServers reads the IPv4 nameservers of a resolv.conf.
func resolvConfServers(path string) ([]netip.Addr, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() {
				out = append(out, a)
			}
		}
	}
	return out, sc.Err()
}
