package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"palisade.dev/palisade/internal/controlplane"
	"palisade.dev/palisade/internal/identity"
	"palisade.dev/palisade/internal/jwt"
	"palisade.dev/palisade/internal/proxy"
	"palisade.dev/palisade/internal/svid"
)

func runProxyConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || (args[0] != "secret" && args[0] != "jwt") {
		fmt.Fprintln(stderr, "Usage: palisade proxy-config secret|jwt NAMESPACE/WORKLOAD|POD.NAMESPACE [-o text|json|pem]\n       palisade proxy-config secret POD.NAMESPACE --kubeconfig PATH [-o text|json|pem]")
		return exitError{code: 2}
	}
	what, target := args[0], args[1]
	fs := flag.NewFlagSet("palisade proxy-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", ".palisade", "state directory of the running mesh")
	admin := fs.String("admin", "", "control plane admin address (default: from the state directory)")
	out := fs.String("o", "text", "output: text, json, or pem (secret only)")
	kf := addKubeFlags(fs)
	if err := fs.Parse(args[2:]); err != nil {
		return exitError{code: 2}
	}
	key, err := parseTarget(target)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	if kf.enabled() {
		if what != "secret" {
			return exitError{code: 2, err: fmt.Errorf("proxy-config %s: --kubeconfig reads only the secret; use --admin", what)}
		}
		if *admin != "" {
			return exitError{code: 2, err: errors.New("proxy-config: --kubeconfig and --admin are exclusive")}
		}
		client, _, err := kf.clients()
		if err != nil {
			return err
		}
		certs, err := sidecarCerts(ctx, client, key)
		if err != nil {
			return err
		}
		return printSecret(stdout, *certs, *out)
	}
	var proxies []controlplane.ProxyStatus
	if err := adminGet(ctx, *state, *admin, "/api/proxies", &proxies); err != nil {
		return err
	}
	var proxyAdmin string
	for _, p := range proxies {
		if p.ID == key.String() {
			proxyAdmin = p.Admin
		}
	}
	if proxyAdmin == "" {
		return fmt.Errorf("no connected sidecar for %s", key)
	}
	switch what {
	case "secret":
		var certs proxy.CertsReport
		if err := getJSON(ctx, "http://"+proxyAdmin+"/certs", &certs); err != nil {
			return err
		}
		return printSecret(stdout, certs, *out)
	default:
		var v jwtConfig
		if err := getJSON(ctx, "http://"+proxyAdmin+"/jwt", &v); err != nil {
			return err
		}
		return printJWT(stdout, v, *out, time.Now())
	}
}

// jwtConfig is what a sidecar's admin /jwt reports.
type jwtConfig struct {
	Rules   []jwt.RuleInfo     `json:"rules"`
	KeySets []jwt.KeySetStatus `json:"keySets"`
}

// printJWT shows each RequestAuthentication rule in force with its key
// set: where the keys come from, how many, how old, and the last refresh
// error, so a user sees why tokens are refused.
func printJWT(w io.Writer, v jwtConfig, format string, now time.Time) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text":
	default:
		return exitError{code: 2, err: fmt.Errorf("-o %s: want text or json", format)}
	}
	if len(v.Rules) == 0 {
		_, err := fmt.Fprintln(w, "No RequestAuthentication applies to this workload: requests pass without token checks.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tISSUER\tAUDIENCES\tFROM\tKEYS\tSOURCE\tFETCHED\tLAST ERROR")
	for _, r := range v.Rules {
		ks := r.KeySet
		src := ks.Source
		if ks.URI != "" {
			src += " " + ks.URI
		}
		fetched := "never"
		if !ks.FetchedAt.IsZero() {
			fetched = now.Sub(ks.FetchedAt).Round(time.Second).String() + " ago"
		} else if ks.Source == "inline" {
			fetched = "-"
		}
		fmt.Fprintf(tw, "%s[%d]\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Policy, r.Index, r.Issuer, orDash(strings.Join(r.Audiences, ",")),
			strings.Join(r.Locations, "; "), ks.Keys, src, fetched, orDash(ks.LastError))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func getJSON(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// printSecret shows a sidecar's /certs: its chain and the roots it
// trusts.
func printSecret(w io.Writer, certs proxy.CertsReport, format string) error {
	chain, err := identity.ParseCertificatesPEM([]byte(certs.ChainPEM))
	if err != nil {
		return err
	}
	d, err := svid.Describe(chain, time.Now(), certs.RenewAt)
	if err != nil {
		return err
	}
	if certs.RootsPEM != "" {
		roots, err := identity.ParseCertificatesPEM([]byte(certs.RootsPEM))
		if err != nil {
			return fmt.Errorf("trust bundle: %w", err)
		}
		d.WithRoots(roots)
	}
	switch format {
	case "pem":
		_, err = w.Write(d.PEM())
	case "json":
		var b []byte
		if b, err = d.JSON(); err == nil {
			_, err = fmt.Fprintf(w, "%s\n", b)
		}
	default:
		_, err = io.WriteString(w, d.Text())
	}
	return err
}
