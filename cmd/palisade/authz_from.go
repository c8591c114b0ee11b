package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/identity"
)

// source is the client `palisade authz check --from` names.
type source struct {
	principal string // Istio's form, "<td>/ns/<ns>/sa/<sa>"; empty for plaintext
	what      string // how it was read, for the output
}

// resolveFrom reads --from:
//
//	NS/NAME                the workload NS/NAME of the config, with its service account
//	NS/sa/SA               the service account SA in NS
//	spiffe://TD/ns/NS/sa/SA a SPIFFE ID
//	TD/ns/NS/sa/SA         an Istio principal
//
// NS/NAME that is no workload but the service account workloads in NS run
// as means that service account, and says so. It is refused when it is
// neither, and when it is a workload and also a different service account
// used in NS, so that a name is never read as something the user did not
// mean.
func resolveFrom(from, trustDomain string, workloads []*controlplane.Workload) (source, error) {
	if from == "" {
		return source{what: "plaintext client (no --from)"}, nil
	}
	if strings.HasPrefix(from, "spiffe://") {
		id, err := spiffeid.FromString(from)
		if err != nil {
			return source{}, fmt.Errorf("%q is not a SPIFFE ID: %w", from, err)
		}
		return source{principal: identity.Principal(id), what: "SPIFFE ID " + id.String()}, nil
	}
	parts := strings.Split(from, "/")
	for _, p := range parts {
		if p == "" {
			return source{}, fmt.Errorf("%q has an empty segment; want NAMESPACE/WORKLOAD, NAMESPACE/sa/SERVICEACCOUNT or a spiffe:// ID", from)
		}
	}
	switch {
	case len(parts) == 5 && parts[1] == "ns" && parts[3] == "sa":
		id, err := identity.ParsePrincipal(from)
		if err != nil {
			return source{}, err
		}
		return source{principal: identity.Principal(id), what: "principal " + from}, nil
	case len(parts) == 3 && parts[1] == "sa":
		p, err := saPrincipal(trustDomain, parts[0], parts[2])
		if err != nil {
			return source{}, err
		}
		return source{principal: p, what: fmt.Sprintf("service account %s/%s", parts[0], parts[2])}, nil
	case len(parts) == 2:
		return workloadSource(parts[0], parts[1], trustDomain, workloads)
	}
	return source{}, fmt.Errorf("%q: want NAMESPACE/WORKLOAD, NAMESPACE/sa/SERVICEACCOUNT, spiffe://TRUSTDOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT or TRUSTDOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT", from)
}

func workloadSource(ns, name, trustDomain string, workloads []*controlplane.Workload) (source, error) {
	var w *controlplane.Workload
	var sameSA []string // workloads in ns whose service account is called name
	for _, x := range workloads {
		if x.Key.Namespace != ns {
			continue
		}
		if x.Key.Name == name {
			w = x
		}
		if x.ServiceAccount == name {
			sameSA = append(sameSA, x.Key.String())
		}
	}
	sort.Strings(sameSA)
	if w == nil {
		if len(sameSA) == 0 {
			return source{}, fmt.Errorf("no workload or service account %s/%s in the config; write %s/sa/SERVICEACCOUNT for another service account, or a spiffe:// ID", ns, name, ns)
		}
		// Not a workload, but the service account some workloads run as:
		// one reading only, and the output says which.
		p, err := saPrincipal(trustDomain, ns, name)
		if err != nil {
			return source{}, err
		}
		return source{principal: p, what: fmt.Sprintf("service account %s/%s (no workload of that name; %s run as it)", ns, name, strings.Join(sameSA, ", "))}, nil
	}
	if w.ServiceAccount != name && len(sameSA) > 0 {
		return source{}, fmt.Errorf("%s/%s is ambiguous: workload %s runs as service account %q, and %q is the service account of %s: write %s/sa/%s or %s/sa/%s",
			ns, name, w.Key, w.ServiceAccount, name, strings.Join(sameSA, ", "), ns, w.ServiceAccount, ns, name)
	}
	p, err := saPrincipal(trustDomain, ns, w.ServiceAccount)
	if err != nil {
		return source{}, err
	}
	return source{principal: p, what: fmt.Sprintf("workload %s (service account %s/%s)", w.Key, ns, w.ServiceAccount)}, nil
}

func saPrincipal(trustDomain, ns, sa string) (string, error) {
	if trustDomain == "" {
		return "", errors.New("the mesh config has no trust domain")
	}
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return "", fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	id, err := identity.ForServiceAccount(td, ns, sa)
	if err != nil {
		return "", err
	}
	return identity.Principal(id), nil
}
