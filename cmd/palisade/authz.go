package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"palisade.dev/palisade/internal/authn"
	"palisade.dev/palisade/internal/authz"
	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/localmesh"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runAuthz(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "replay" {
		return runAuthzReplay(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: palisade authz replay -f DIR [--since 15m] [--suggest]")
		fmt.Fprintln(stderr, "Usage: palisade authz check --to NAMESPACE/WORKLOAD [--from NS/WORKLOAD|NS/sa/SA|spiffe://ID] [--method M] [--path P] ...")
		return exitError{code: 2}
	}
	fs := flag.NewFlagSet("palisade authz check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("f", "", "config directory (default: the running mesh's)")
	state := fs.String("state", ".palisade", "state directory of the running mesh")
	to := fs.String("to", "", "destination workload NAMESPACE/NAME (required)")
	from := fs.String("from", "", "source: a workload NAMESPACE/NAME of the config, NAMESPACE/sa/SERVICEACCOUNT, a spiffe:// ID or an Istio principal (cluster.local/ns/x/sa/y); empty for a plaintext client")
	method := fs.String("method", "GET", "HTTP method, as sent: methods are case-sensitive (an ALLOW on GET does not admit get)")
	path := fs.String("path", "/", "request path (normalized as the mesh config says)")
	host := fs.String("host", "", "Host header (default: the workload's service)")
	port := fs.Uint("port", 0, "destination port (default: the workload's first port)")
	tcp := fs.Bool("tcp", false, "a TCP connection, not an HTTP request")
	srcIP := fs.String("source-ip", "127.0.0.1", "source IP")
	reqPrincipal := fs.String("request-principal", "", "JWT principal iss/sub (empty: no token)")
	var headers, claims multiFlag
	fs.Var(&headers, "header", "a request header Name=Value (repeatable)")
	fs.Var(&claims, "claim", "a JWT claim name=value; a value [a,b] is a list (repeatable)")
	out := fs.String("o", "text", "output: text or json")
	kf := addKubeFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return exitError{code: 2}
	}
	key, err := parseTarget(*to)
	if err != nil {
		return exitError{code: 2, err: fmt.Errorf("--to: %w", err)}
	}
	var snap *config.Snapshot
	var workloads []*controlplane.Workload
	if kf.enabled() {
		if snap, workloads, err = loadClusterWorkloads(ctx, kf); err != nil {
			return err
		}
	} else if *dir == "" {
		b, err := os.ReadFile(filepath.Join(*state, localmesh.StateFile))
		if err != nil {
			return exitError{code: 2, err: fmt.Errorf("no -f given and no running mesh in %s", *state)}
		}
		var st localmesh.State
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		*dir = st.ConfigDir
	}
	if snap == nil {
		if snap, err = config.Load(*dir); err != nil {
			return err
		}
		workloads = (controlplane.ConfigRegistry{}).Workloads(snap)
	}
	var w *controlplane.Workload
	for _, x := range workloads {
		if x.Key == key {
			w = x
		}
	}
	if w == nil {
		return fmt.Errorf("no workload %s in %s", key, *dir)
	}
	var ps []authz.Policy
	for _, r := range snap.OfKind(config.KindAuthorizationPolicy) {
		ps = append(ps, authz.Policy{Namespace: r.Meta.Namespace, Name: r.Meta.Name, Spec: r.Spec.(*securityv1beta1.AuthorizationPolicy)})
	}
	eng, err := authz.Compile(ps, w.Ref(), authz.Options{RootNamespace: snap.Mesh.GetRootNamespace()})
	if err != nil {
		return err
	}
	req := &authz.Request{IsHTTP: !*tcp, Method: *method, Host: *host, Headers: http.Header{}}
	req.SourceIP, err = netip.ParseAddr(*srcIP)
	if err != nil {
		return exitError{code: 2, err: fmt.Errorf("--source-ip: %w", err)}
	}
	req.RemoteIP = req.SourceIP
	req.DestinationIP = netip.MustParseAddr("127.0.0.1")
	req.DestinationPort = uint32(*port)
	if req.DestinationPort == 0 && len(w.Ports) > 0 {
		req.DestinationPort = w.Ports[0].Number
	}
	if req.Host == "" {
		req.Host = w.Service + "." + key.Namespace + ".svc.cluster.local:" + strconv.Itoa(int(req.DestinationPort))
	}
	norm, reject := authz.NormalizePath(snap.Mesh.GetPathNormalization().GetNormalization(), *path)
	if reject {
		fmt.Fprintf(stdout, "DENY (400): the path %q is rejected by path normalization before any policy\n", *path)
		return exitError{code: 1}
	}
	req.Path = norm
	src, err := resolveFrom(*from, snap.Mesh.GetTrustDomain(), workloads)
	if err != nil {
		return exitError{code: 2, err: fmt.Errorf("--from: %w", err)}
	}
	req.Principal = src.principal
	for _, h := range headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok {
			return exitError{code: 2, err: fmt.Errorf("--header %q: want Name=Value", h)}
		}
		req.Headers.Add(k, v)
	}
	if *reqPrincipal != "" || len(claims) > 0 {
		req.Auth = &authz.AuthInfo{Principal: *reqPrincipal, Claims: map[string]any{}}
		for _, c := range claims {
			k, v, ok := strings.Cut(c, "=")
			if !ok {
				return exitError{code: 2, err: fmt.Errorf("--claim %q: want name=value", c)}
			}
			if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
				var list []any
				for _, s := range strings.Split(strings.Trim(v, "[]"), ",") {
					list = append(list, strings.TrimSpace(s))
				}
				req.Auth.Claims[k] = list
			} else {
				req.Auth.Claims[k] = v
			}
		}
		if iss, sub, ok := strings.Cut(*reqPrincipal, "/"); ok {
			req.Auth.Claims["iss"], req.Auth.Claims["sub"] = iss, sub
		}
	}
	// A plaintext client never reaches authorization on a STRICT port:
	// the sidecar resets the connection first.
	if peer := controlplane.PeerResolver(snap, w.Ref()).Mode(req.DestinationPort); req.Principal == "" && peer.Mode == authn.Strict {
		reason := fmt.Sprintf("plaintext is refused by STRICT mTLS (PeerAuthentication %s) before any policy", peer.Source)
		if *out == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(authz.Explanation{Decision: authz.Decision{Reason: reason}}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(stdout, "DENY (connection reset): %s\n", reason)
		}
		return exitError{code: 1}
	}
	x := eng.Explain(req)
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(x); err != nil {
			return err
		}
	} else {
		printExplanation(stdout, req, src, x)
	}
	if !x.Decision.Allowed {
		return exitError{code: 1}
	}
	return nil
}

func printExplanation(w io.Writer, req *authz.Request, src source, x authz.Explanation) {
	verdict := "ALLOW"
	if !x.Decision.Allowed {
		verdict = "DENY (403 RBAC: access denied)"
	}
	if x.CustomMatched {
		fmt.Fprintf(w, "CUSTOM: sent to extension provider %q first (policy %s); its answer can only deny further.\n", x.CustomProvider, x.CustomPolicy)
	}
	fmt.Fprintf(w, "%s: %s", verdict, x.Decision.Reason)
	if x.Decision.Policy.Name != "" {
		fmt.Fprintf(w, " (%s)", x.Decision.Policy)
	}
	fmt.Fprintln(w)
	if x.Decision.Audited {
		fmt.Fprintf(w, "AUDIT: %s\n", x.Decision.Audit)
	}
	fmt.Fprintf(w, "from: %s\n", src.what)
	if req.Principal == "" {
		fmt.Fprintln(w, "note: no source principal: the request is plaintext, so principals and namespaces are absent")
	}
	fmt.Fprintln(w, "\nPolicies that apply:")
	if len(x.Policies) == 0 {
		fmt.Fprintln(w, "  none: with no ALLOW policy, everything is allowed")
	}
	for _, p := range x.Policies {
		m := "did not match"
		if p.Matched {
			m = "MATCHED"
		}
		fmt.Fprintf(w, "  %s %s/%s: %s", p.Policy.Action, p.Policy.Namespace, p.Policy.Name, m)
		if p.Note != "" {
			fmt.Fprintf(w, " (%s)", p.Note)
		}
		fmt.Fprintln(w)
		for _, r := range p.Rules {
			st := "no match"
			if r.Matched {
				st = "match"
			}
			fmt.Fprintf(w, "    rule %d: %s", r.Index, st)
			if r.Note != "" {
				fmt.Fprintf(w, " (%s)", r.Note)
			}
			fmt.Fprintln(w)
			for _, f := range r.Failed {
				fmt.Fprintf(w, "      failed: %s\n", f)
			}
			for _, f := range r.Ignored {
				fmt.Fprintf(w, "      ignored for TCP: %s\n", f)
			}
		}
	}
}
