package replay

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/telemetry"
)

// Suggest writes the least-privilege ALLOW AuthorizationPolicies for the
// traffic the entries recorded: one per workload that received any, a
// rule per source (its principal, or its IP address when it came in
// plaintext) naming the methods and path prefixes it used (the ports,
// for TCP). Requests that were refused are not allowed by the
// suggestion. The output is YAML, documents separated by "---".
func Suggest(workloads []*controlplane.Workload, entries []telemetry.Entry) ([]byte, error) {
	type src struct {
		principal, ip string
	}
	type traffic struct {
		methods, paths map[string]bool
		ports          map[uint32]bool
	}
	byWorkload := map[string]map[src]*traffic{}
	wl := map[string]*controlplane.Workload{}
	for _, w := range workloads {
		wl[w.Key.String()] = w
	}
	for i := range entries {
		e := &entries[i]
		key := e.DestinationNamespace + "/" + e.DestinationWorkload
		if e.Direction != telemetry.Inbound || wl[key] == nil || denied(e.Decision) {
			continue
		}
		s := src{}
		if e.MTLS && e.SourcePrincipal != "" {
			s.principal = strings.TrimPrefix(e.SourcePrincipal, "spiffe://")
		} else if h, _, err := net.SplitHostPort(e.DownstreamRemote); err == nil {
			s.ip = h
		} else {
			continue
		}
		m := byWorkload[key]
		if m == nil {
			m = map[src]*traffic{}
			byWorkload[key] = m
		}
		t := m[s]
		if t == nil {
			t = &traffic{methods: map[string]bool{}, paths: map[string]bool{}, ports: map[uint32]bool{}}
			m[s] = t
		}
		if e.Protocol == telemetry.ProtocolTCP {
			t.ports[e.DestinationPort] = true
		} else {
			t.methods[e.Method] = true
			t.paths[pathPattern(e.Path)] = true
		}
	}
	keys := make([]string, 0, len(byWorkload))
	for k := range byWorkload {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []byte
	for _, k := range keys {
		w := wl[k]
		sel := selectorLabels(w)
		if len(sel) == 0 {
			return nil, fmt.Errorf("replay: suggest: workload %s has no labels to select it by", k)
		}
		srcs := make([]src, 0, len(byWorkload[k]))
		for s := range byWorkload[k] {
			srcs = append(srcs, s)
		}
		sort.Slice(srcs, func(i, j int) bool {
			if srcs[i].principal != srcs[j].principal {
				return srcs[i].principal < srcs[j].principal
			}
			return srcs[i].ip < srcs[j].ip
		})
		var rules []any
		plaintext := false
		for _, s := range srcs {
			t := byWorkload[k][s]
			from := map[string]any{}
			if s.principal != "" {
				from["principals"] = []string{s.principal}
			} else {
				// A plaintext caller has only its address. (An ALLOW
				// cannot say "without a principal": notPrincipals
				// fails closed on a missing one.)
				from["ipBlocks"] = []string{s.ip}
				plaintext = true
			}
			if len(t.methods) > 0 {
				rules = append(rules, map[string]any{
					"from": []any{map[string]any{"source": from}},
					"to":   []any{map[string]any{"operation": map[string]any{"methods": sortedKeys(t.methods), "paths": sortedKeys(t.paths)}}},
				})
			}
			if len(t.ports) > 0 {
				var ports []string
				for p := range t.ports {
					ports = append(ports, strconv.FormatUint(uint64(p), 10))
				}
				sort.Strings(ports)
				rules = append(rules, map[string]any{
					"from": []any{map[string]any{"source": from}},
					"to":   []any{map[string]any{"operation": map[string]any{"ports": ports}}},
				})
			}
		}
		doc := map[string]any{
			"apiVersion": "security.istio.io/v1",
			"kind":       "AuthorizationPolicy",
			"metadata":   map[string]any{"name": w.Key.Name + "-observed", "namespace": w.Key.Namespace},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": sel},
				"action":   "ALLOW",
				"rules":    rules,
			},
		}
		b, err := yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("replay: suggest: %w", err)
		}
		if len(out) > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, fmt.Sprintf("# Allows exactly the traffic %s received in the recorded window.\n", k)...)
		if plaintext {
			out = append(out, "# It received plaintext: the ipBlocks rules admit what comes from those addresses.\n"...)
		}
		out = append(out, b...)
	}
	return out, nil
}

// pathPattern is the narrowest Istio path pattern covering p and its
// siblings: "/" and one-segment paths exactly, deeper ones by their first
// segment ("/products/3" → "/products/*").
func pathPattern(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	rest := strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return "/" + rest[:i] + "/*"
	}
	return p
}

// selectorLabels picks the labels that select w: app (and version when
// set, as workloads of one app differ by it), else all of them.
func selectorLabels(w *controlplane.Workload) map[string]string {
	if a := w.Labels["app"]; a != "" {
		sel := map[string]string{"app": a}
		if v := w.Labels["version"]; v != "" {
			sel["version"] = v
		}
		return sel
	}
	return w.Labels
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
