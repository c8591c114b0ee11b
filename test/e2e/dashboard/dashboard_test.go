package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"palisade.dev/palisade/internal/dashboard"
	"palisade.dev/palisade/internal/localmesh"
	"palisade.dev/palisade/internal/replay"
	"palisade.dev/palisade/test/e2e/meshtest"
	"palisade.dev/palisade/test/peers"
)

// The workshop mesh, seen in a real browser: the graph, its locks, the
// feed of denials, a workload's certificate, and then what a proposed
// policy would change.
func TestDashboardWorkshop(t *testing.T) {
	br := newBrowser(t)
	b := meshtest.Build(t)
	dir := meshtest.CopyDir(t, filepath.Join(b.Root, "examples", "workshop"))
	offset := meshtest.GatewayOffset(t, 80)
	exposed := peers.FreeAddr(t) // loopback: plain HTTP is allowed there
	m := meshtest.Up(t, b, dir, "--gateway-port-offset", fmt.Sprint(offset), "--dashboard-addr", exposed)
	gateway := fmt.Sprintf("http://127.0.0.1:%d/", 80+offset)

	// The exposed listener wants the token of the state directory; the
	// browser logs in with the link palisade dashboard prints, and uses
	// the exposed listener from then on.
	tokenFile := filepath.Join(m.State, localmesh.DashboardTokenFile)
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v %v", tokenFile, fi, err)
	}
	tok, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(tok))
	if code := getStatus(t, "http://"+exposed+"/api/dashboard/graph", ""); code != http.StatusUnauthorized {
		t.Errorf("exposed listener without the token: %d, want 401", code)
	}
	if code := getStatus(t, "http://"+exposed+"/api/dashboard/graph", token); code != http.StatusOK {
		t.Errorf("exposed listener with the token: %d, want 200", code)
	}
	if code := getStatus(t, "http://"+m.Admin+"/api/dashboard/graph", ""); code != http.StatusOK {
		t.Errorf("admin listener on loopback: %d, want 200", code)
	}
	out, err := m.Palisade("dashboard", "--state", m.State, "--no-browser")
	login := "http://" + exposed + "/dashboard/login?token=" + token
	if err != nil || !strings.Contains(out, "http://"+m.Admin+"/dashboard/") || !strings.Contains(out, login) {
		t.Fatalf("palisade dashboard: %v\n%s", err, out)
	}
	br.run(20*time.Second, chromedp.Navigate(login))
	ui := "http://" + exposed + "/dashboard/"

	for range 5 {
		get(t, http.DefaultClient, gateway, "", http.StatusOK)
	}

	// STRICT: three services and the gateway, a lock on every mesh edge.
	br.run(20*time.Second, chromedp.Navigate(ui+"#/graph"))
	br.waitFor(10*time.Second, "graph under STRICT", `(() => {
		const svcs = [...document.querySelectorAll('.node[data-kind=workload]')].map(n => n.dataset.service).sort().join(',');
		if (svcs !== 'catalogdetail,frontend,productcatalog') return 'services: ' + svcs;
		if (!document.querySelector('.node[data-kind=gateway]')) return 'no gateway node';
		const want = ['istio-ingress/istio-ingressgateway>workshop/frontend', 'workshop/frontend>workshop/productcatalog', 'workshop/productcatalog>workshop/catalogdetail'];
		const edges = [...document.querySelectorAll('.edge[data-ingress=false]')];
		const have = edges.map(e => e.dataset.source + '>' + e.dataset.destination);
		for (const w of want) if (!have.includes(w)) return 'missing edge ' + w + ' in ' + have.join(' ');
		for (const e of edges) if (e.dataset.mtls !== 'mtls' || !e.querySelector('.lock')) return 'edge without lock: ' + e.dataset.source + '>' + e.dataset.destination + ' ' + e.dataset.mtls;
		if (document.getElementById('mesh-tls').dataset.state !== 'STRICT') return 'masthead: ' + document.getElementById('mesh-tls').textContent;
		return '';
	})()`)
	br.screenshot("graph-strict")

	// A request denied by a policy reaches the feed within 2 s, with the
	// policy's name.
	writeFile(t, dir, "deny-admin.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: workshop
spec:
  selector:
    matchLabels:
      app: catalogdetail
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin*"]
`)
	br.run(10*time.Second, chromedp.Navigate(ui+"#/decisions"))
	pc := m.Client("workshop", "productcatalog")
	var denied time.Time
	var reqID string
	meshtest.Eventually(t, 20*time.Second, "the DENY policy in force", func() error {
		reqID = fmt.Sprintf("dashboard-test-%d", time.Now().UnixNano())
		code := get(t, pc, "http://catalogdetail:3000/admin/users", reqID, 0)
		denied = time.Now()
		if code != http.StatusForbidden {
			return fmt.Errorf("GET /admin/users: %d", code)
		}
		return nil
	})
	took := br.waitFor(2*time.Second-time.Since(denied), "the denial in the feed", fmt.Sprintf(`(() => {
		const row = document.querySelector('tr.decision[data-request-id=%q]');
		if (!row) return 'no row for the request';
		if (!row.textContent.includes('workshop/deny-admin')) return 'row lacks the policy: ' + row.textContent;
		if (!row.querySelector('a.policy-link')) return 'row lacks a link to the policy';
		return '';
	})()`, reqID))
	t.Logf("the denial appeared in the feed %s after its 403 (%s of polling in the page)", time.Since(denied).Round(time.Millisecond), took.Round(time.Millisecond))
	br.screenshot("decisions-denied")
	// Search by request id, then follow the link to the policy.
	br.run(10*time.Second, chromedp.SendKeys(chromedp.CSS("#f-q"), reqID))
	br.waitFor(5*time.Second, "search by request id", fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll('tr.decision')];
		if (rows.length !== 1 || rows[0].dataset.requestId !== %q) return rows.length + ' rows';
		return '';
	})()`, reqID))
	br.run(10*time.Second, chromedp.Click(chromedp.CSS("tr.decision a.policy-link")))
	br.waitFor(5*time.Second, "the policy page", `(() => {
		const s = document.getElementById('policy-spec');
		return s && s.textContent.includes('/admin*') && s.textContent.includes('DENY') ? '' : 'no policy spec';
	})()`)

	// The workload page: SPIFFE ID and the certificate's expiry, as the
	// sidecar holds it.
	leaf := sidecarLeaf(t, m.Proxy("workshop", "frontend").Admin)
	br.run(10*time.Second, chromedp.Navigate(ui+"#/workload/workshop/frontend"))
	notAfter, _ := json.Marshal(leaf.NotAfter)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/workshop/sa/frontend-sa" {
		t.Fatalf("the sidecar's certificate names %v", leaf.URIs)
	}
	br.waitFor(10*time.Second, "the workload page", fmt.Sprintf(`(() => {
		const id = document.getElementById('spiffe-id'), sans = document.getElementById('cert-sans'), na = document.getElementById('cert-not-after');
		if (!id || id.textContent !== %[1]q) return 'spiffe id: ' + (id && id.textContent);
		if (!sans || sans.textContent !== %[1]q) return 'certificate SANs: ' + (sans && sans.textContent);
		if (!na || !na.textContent.includes(%[2]s)) return 'not after: ' + (na && na.textContent);
		return '';
	})()`, leaf.URIs[0].String(), notAfter))
	br.screenshot("workload-frontend")

	proposal, changes := replayWindow(t, m, dir)

	// The same preview in the page: paste, replay, the same changes.
	br.run(10*time.Second, chromedp.Navigate(ui+"#/preview"))
	yamlJS, _ := json.Marshal(proposal)
	br.waitFor(5*time.Second, "the preview page", fmt.Sprintf(`(() => {
		const ta = document.getElementById('proposal');
		if (!ta) return 'no textarea';
		ta.value = %s;
		return '';
	})()`, yamlJS))
	br.run(10*time.Second, chromedp.Click(chromedp.CSS("#replay")))
	br.waitFor(10*time.Second, "the previewed changes", fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll('#changes tr.change')];
		if (rows.length !== %d) return rows.length + ' changes listed';
		for (const r of rows) if (r.dataset.kind !== %q || !r.textContent.includes('deny-frontend-reads')) return 'row: ' + r.textContent;
		return '';
	})()`, changes, replay.AllowedToDenied))
	br.screenshot("preview-deny")
	br.run(10*time.Second, chromedp.Click(chromedp.CSS("#suggest")))
	br.waitFor(10*time.Second, "the suggested policies", `(() => {
		const s = document.getElementById('suggested');
		return s && s.textContent.includes('kind: AuthorizationPolicy') && s.textContent.includes('catalogdetail-observed') ? '' : 'no suggestion';
	})()`)

	// PERMISSIVE: a plain client's edge appears, without a lock.
	writeFile(t, dir, "peerauthentication.yaml", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: PERMISSIVE
`)
	detail := "http://" + m.Workload("workshop", "catalogdetail").InboundAddress + "/catalogDetail"
	meshtest.Eventually(t, 20*time.Second, "plaintext admitted under PERMISSIVE", func() error {
		resp, err := http.Get(detail)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("plain GET: %d", resp.StatusCode)
		}
		return nil
	})
	br.run(10*time.Second, chromedp.Navigate(ui+"#/graph"))
	br.waitFor(10*time.Second, "the plaintext edge", `(() => {
		const e = document.querySelector('.edge[data-source=unknown][data-destination="workshop/catalogdetail"]');
		if (!e) return 'no edge from unknown to catalogdetail';
		if (e.dataset.mtls !== 'plaintext') return 'edge is ' + e.dataset.mtls;
		if (e.querySelector('.lock')) return 'plaintext edge has a lock';
		if (!e.querySelector('.plain-label')) return 'plaintext edge not marked';
		const mesh = document.querySelector('.edge[data-source="workshop/frontend"][data-destination="workshop/productcatalog"]');
		if (!mesh || !mesh.querySelector('.lock')) return 'the mTLS edge lost its lock';
		if (document.getElementById('mesh-tls').dataset.state === 'STRICT') return 'masthead still STRICT';
		return '';
	})()`)
	br.screenshot("graph-permissive-plaintext")
}

// replayWindow checks palisade authz replay on what the mesh recorded: a
// proposed DENY lists exactly the requests it would deny, and the
// suggested policies allow all recorded traffic and deny a source never
// seen.
func replayWindow(t *testing.T, m *meshtest.Mesh, dir string) (proposal string, changes int) {
	t.Helper()
	var recs struct {
		Records []dashboard.Record `json:"records"`
	}
	getJSON(t, "http://"+m.Admin+"/api/dashboard/records?since=15m", &recs)
	var want []string
	for _, r := range recs.Records {
		if r.Workload == "workshop/productcatalog" && r.Direction == "inbound" && r.Method == "GET" &&
			r.SourcePrincipal == "spiffe://cluster.local/ns/workshop/sa/frontend-sa" && !strings.Contains(r.Decision, "DENY") {
			want = append(want, r.Start.Format(time.RFC3339Nano)+" "+r.Path)
		}
	}
	if len(want) == 0 {
		t.Fatal("no recorded request from frontend to productcatalog")
	}
	pdir := t.TempDir()
	proposal = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-frontend-reads
  namespace: workshop
spec:
  selector:
    matchLabels:
      app: productcatalog
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/workshop/sa/frontend-sa"]
    to:
    - operation:
        methods: ["GET"]
`
	writeFile(t, pdir, "deny-frontend-reads.yaml", proposal)
	res := runReplay(t, m, "-f", pdir, "--since", "15m", "-o", "json")
	var got []string
	for _, c := range res.Changes {
		if c.Kind != replay.AllowedToDenied || c.Policy != "DENY workshop/deny-frontend-reads rule 0" {
			t.Errorf("unexpected change %s by %q: %s %s %s", c.Kind, c.Policy, c.Entry.DestinationWorkload, c.Entry.Method, c.Entry.Path)
			continue
		}
		got = append(got, c.Entry.Start.Format(time.RFC3339Nano)+" "+c.Entry.Path)
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the proposed DENY would deny:\n%s\nwant exactly the recorded requests:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	text, err := m.Palisade("authz", "replay", "--state", m.State, "-f", pdir, "--since", "15m")
	if err != nil || !strings.Contains(text, fmt.Sprintf("%d would change", len(want))) {
		t.Errorf("authz replay (text): %v\n%s", err, text)
	}

	suggested, err := m.Palisade("authz", "replay", "--state", m.State, "--suggest", "--since", "15m")
	if err != nil {
		t.Fatalf("authz replay --suggest: %v\n%s", err, suggested)
	}
	t.Logf("suggested policies:\n%s", suggested)
	sdir := t.TempDir()
	writeFile(t, sdir, "suggested.yaml", suggested)
	if res := runReplay(t, m, "-f", sdir, "--since", "15m", "-o", "json"); len(res.Changes) != 0 {
		for _, c := range res.Changes {
			t.Errorf("the suggested policies change %s %s → %s %s %s", c.Kind, c.Entry.SourcePrincipal, c.Entry.DestinationWorkload, c.Entry.Method, c.Entry.Path)
		}
	}
	// Applied to the config: analyze accepts it; a recorded caller is
	// allowed, one never seen is denied.
	applied := meshtest.CopyDir(t, dir)
	writeFile(t, applied, "suggested.yaml", suggested)
	if out, err := m.Palisade("analyze", applied); err != nil {
		t.Errorf("analyze refuses the suggestion: %v\n%s", err, out)
	}
	if out, err := m.Palisade("authz", "check", "-f", applied, "--to", "workshop/catalogdetail", "--from", "workshop/productcatalog", "--path", "/catalogDetail"); err != nil {
		t.Errorf("the recorded caller is not allowed by the suggestion: %v\n%s", err, out)
	}
	if out, err := m.Palisade("authz", "check", "-f", applied, "--to", "workshop/catalogdetail", "--from", "workshop/frontend", "--path", "/catalogDetail"); err == nil || !strings.Contains(out, "DENY") {
		t.Errorf("a source never seen is not denied by the suggestion: %v\n%s", err, out)
	}
	return proposal, len(want)
}
