package identity_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"palisade.dev/palisade/test/e2e/meshtest"
)

// workshopLoad is a client inside the mesh (the frontend's sidecar) asking
// a few times a second: GET / of the frontend, which crosses all three
// workloads over mTLS, on kept-alive connections; and productcatalog's
// /products/ on a fresh connection each time.
type workshopLoad []*meshtest.Load

var tags = regexp.MustCompile(`<[^>]*>`)

func startWorkshopLoad(t *testing.T, m *meshtest.Mesh) workshopLoad {
	t.Helper()
	pu, _ := url.Parse("http://" + m.Proxy("workshop", "frontend").HTTPProxy)
	fresh := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
	get := func(u string) func() (*http.Request, error) {
		return func() (*http.Request, error) { return http.NewRequest(http.MethodGet, u, nil) }
	}
	page := func(status int, body []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("status %d: %.300s", status, body)
		}
		text := tags.ReplaceAllString(string(body), "")
		for _, w := range []string{"ABC.com", "catalogdetail was called by: spiffe://cluster.local/ns/workshop/sa/productcatalog-sa"} {
			if !strings.Contains(text, w) {
				return fmt.Errorf("page lacks %q", w)
			}
		}
		return nil
	}
	return workshopLoad{
		meshtest.StartLoad(t, m.Client("workshop", "frontend"), 500*time.Millisecond, get("http://frontend:9000/"), page),
		meshtest.StartLoad(t, fresh, 700*time.Millisecond, get("http://productcatalog:5000/products/"), nil),
	}
}

// stop ends the load and fails the test on any failed request, or if too
// few were sent for "under load" to mean anything.
func (l workshopLoad) stop(t *testing.T, ran time.Duration) {
	t.Helper()
	for i, ld := range l {
		r := ld.Stop()
		t.Logf("load %d: %d requests, %d ok, %d failed", i, r.Sent, r.OK, len(r.Failures))
		for _, f := range r.Failures {
			t.Errorf("failed request: %s", f)
		}
		// Each sends at least one request a second when the machine keeps
		// up; half that still shows steady traffic on a loaded machine.
		if min := int(ran.Seconds() / 2); r.Sent < min {
			t.Errorf("load %d sent %d requests in %s, want at least %d", i, r.Sent, ran.Round(time.Second), min)
		}
	}
}

// renewals reads palisade_svid_renewals_total from a sidecar's /metrics.
func renewals(t *testing.T, m *meshtest.Mesh, id string) (success, failure float64) {
	t.Helper()
	ns, name, _ := strings.Cut(id, "/")
	resp, err := http.Get("http://" + m.Proxy(ns, name).Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for label, v := range map[string]*float64{`result="success"`: &success, `result="failure"`: &failure} {
			if strings.HasPrefix(line, "palisade_svid_renewals_total{"+label+"}") {
				f := strings.Fields(line)
				*v, _ = strconv.ParseFloat(f[len(f)-1], 64)
			}
		}
	}
	return success, failure
}

// With one-minute certificates, five minutes of requests through the mesh
// see no failure while every proxy's certificate turns over about ten
// times, each renewed at half its lifetime less a random jitter.
func TestCertificatesTurnOverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("five minutes of certificate turnover under load; runs without -short")
	}
	t.Parallel()
	const ttl = time.Minute
	const run = 5 * time.Minute
	m := upWorkshop(t, "--cert-ttl", ttl.String())
	ids := proxyIDs(t, m)
	load := startWorkshopLoad(t, m)
	start := time.Now()

	serials := map[string][]string{}
	var offsets []time.Duration
	for time.Since(start) < run {
		for _, id := range ids {
			s, err := secretJSON(t, m, id)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(serials[id], s.Serial) {
				continue
			}
			serials[id] = append(serials[id], s.Serial)
			now := time.Now()
			if !now.Before(s.NotAfter) {
				t.Errorf("%s holds an expired certificate (serial %s, notAfter %s)", id, s.Serial, s.NotAfter)
			}
			// The CA honours the one-minute TTL (NotBefore is backdated
			// for clock skew, NotAfter is one TTL after issuance)...
			if life := s.NotAfter.Sub(s.NotBefore); life > ttl+time.Minute+time.Second {
				t.Errorf("%s: certificate valid for %s, want the %s asked for (plus the CA's backdate)", id, life, ttl)
			}
			// ...and the agent renews at half of it, less up to 5% jitter.
			// NotAfter is in whole seconds: issuance is within a second
			// after NotAfter-ttl.
			off := s.RenewAt.Sub(s.NotAfter.Add(-ttl))
			offsets = append(offsets, off)
			if off < ttl/2-ttl/20-time.Second || off > ttl/2+time.Second {
				t.Errorf("%s: renews %s after issuance, want %s less up to %s of jitter", id, off.Round(time.Millisecond), ttl/2, ttl/20)
			}
		}
		time.Sleep(4 * time.Second)
	}
	ran := time.Since(start)
	load.stop(t, ran)

	for _, id := range ids {
		n := len(serials[id])
		t.Logf("%s: %d certificates in %s", id, n, ran.Round(time.Second))
		if n < 5 {
			t.Errorf("%s: %d distinct certificates in %s, want the certificate to change at least 4 times", id, n, ran.Round(time.Second))
		}
		ok, failed := renewals(t, m, id)
		if ok < 5 || failed != 0 {
			t.Errorf("%s: palisade_svid_renewals_total success=%v failure=%v, want >= 5 and 0", id, ok, failed)
		}
		// Not a renewal loop either: one per half-life at most, with
		// slack for the first.
		if max := run.Seconds()/(ttl.Seconds()*0.45) + 2; ok > max {
			t.Errorf("%s: %v successful renewals in %s, want at most %v", id, ok, ran.Round(time.Second), max)
		}
	}
	slices.Sort(offsets)
	if len(offsets) > 1 && offsets[0] == offsets[len(offsets)-1] {
		t.Errorf("every renewal planned at the same offset %s: no jitter", offsets[0])
	} else if len(offsets) > 0 {
		t.Logf("renewal offsets after issuance: %s .. %s over %d certificates", offsets[0].Round(time.Millisecond), offsets[len(offsets)-1].Round(time.Millisecond), len(offsets))
	}
}

// A root rotation in a running mesh, with requests flowing throughout:
// the new root joins every proxy's bundle at once, workloads move to
// certificates under it after the grace period (openssl verifies them
// against the new root alone), and the old root leaves only once every
// certificate it signed has expired. No request fails.
func TestRootRotationWithoutFailedRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("a root rotation with one-minute certificates takes about two minutes; runs without -short")
	}
	t.Parallel()
	m := upWorkshop(t, "--cert-ttl", "1m", "--root-rotation-grace", "15s")
	ids := proxyIDs(t, m)
	before := apiCA(t, m)
	if len(before.Roots) != 1 || before.Roots[0].State != "issuing" || before.BundleSize != 1 {
		t.Fatalf("before the rotation: %+v, want one issuing root", before)
	}
	oldFP := before.Roots[0].Root.SHA256
	// The mesh's root-cert.pem follows the bundle: keep the old root apart.
	bundleFile := filepath.Join(m.State, "root-cert.pem")
	oldRoot := parsePEM(t, mustRead(t, bundleFile))
	if len(oldRoot) != 1 || fingerprint(oldRoot[0]) != oldFP {
		t.Fatalf("%s: %d roots, want the CA's root %s", bundleFile, len(oldRoot), oldFP)
	}
	oldRootFile := writePEM(t, filepath.Join(t.TempDir(), "old-root.pem"), oldRoot...)
	load := startWorkshopLoad(t, m)
	start := time.Now()
	time.Sleep(3 * time.Second)

	out, err := m.Palisade("ca", "rotate-root", "--state", filepath.Join(m.State, "ca"))
	if err != nil || !strings.Contains(out, "joined the trust bundle of the running mesh") {
		t.Fatalf("palisade ca rotate-root: %v\n%s", err, out)
	}
	rotated := time.Now()
	st := apiCA(t, m)
	if len(st.Roots) != 2 || st.BundleSize != 2 || st.Roots[1].ID != 2 || st.Roots[0].Root.SHA256 != oldFP {
		t.Fatalf("after rotate-root: %+v, want the old root and root 2 in the bundle", st)
	}
	if st.Roots[1].State != "pending" && time.Since(rotated) < 10*time.Second {
		t.Errorf("root 2 is %q right after rotate-root, want pending for the grace period", st.Roots[1].State)
	}
	newFP := st.Roots[1].Root.SHA256
	newRootFile := filepath.Join(m.State, "ca", "roots", "2", "root-cert.pem")
	if got := fingerprint(parsePEM(t, mustRead(t, newRootFile))[0]); got != newFP {
		t.Fatalf("%s is root %s, the CA says %s", newRootFile, got, newFP)
	}
	// The CA's state on disk, read by palisade ca show, has both roots.
	out, err = m.Palisade("ca", "show", "-o", "json", "--state", filepath.Join(m.State, "ca"))
	if err != nil || !strings.Contains(out, oldFP) || !strings.Contains(out, newFP) {
		t.Errorf("palisade ca show after the rotation lacks a root: %v\n%s", err, out)
	}

	// 1. The new root joins every proxy's bundle, next to the old one.
	meshtest.Eventually(t, 30*time.Second, "every proxy trusting both roots", func() error {
		for _, id := range ids {
			fps, err := bundleOf(t, m, id)
			if err != nil {
				return err
			}
			if slices.Sort(fps); !slices.Equal(fps, sorted(oldFP, newFP)) {
				return fmt.Errorf("%s trusts %d roots %v", id, len(fps), fps)
			}
		}
		return nil
	})
	t.Logf("every proxy trusts both roots %s after rotate-root", time.Since(rotated).Round(time.Millisecond))
	meshtest.Eventually(t, 10*time.Second, "root-cert.pem holding both roots", func() error {
		var fps []string
		for _, c := range parsePEM(t, mustRead(t, bundleFile)) {
			fps = append(fps, fingerprint(c))
		}
		if slices.Sort(fps); !slices.Equal(fps, sorted(oldFP, newFP)) {
			return fmt.Errorf("%s holds %v", bundleFile, fps)
		}
		return nil
	})

	// 2. After the grace period every workload's certificate chains to
	// the new root. Meanwhile, note every certificate seen under the old
	// root: the old root must outlive them all.
	var oldMaxNotAfter time.Time
	moved := map[string]bool{}
	meshtest.Eventually(t, 150*time.Second, "every proxy holding a certificate under the new root", func() error {
		var waiting []string
		for _, id := range ids {
			if moved[id] {
				continue
			}
			chain := chainPEM(t, m, id)
			root := chain[len(chain)-1]
			switch fingerprint(root) {
			case newFP:
				moved[id] = true
				if time.Since(rotated) < 14*time.Second {
					t.Errorf("%s got a certificate under the new root %s after rotate-root, before the 15s grace", id, time.Since(rotated))
				}
			case oldFP:
				if chain[0].NotAfter.After(oldMaxNotAfter) {
					oldMaxNotAfter = chain[0].NotAfter
				}
				waiting = append(waiting, id)
			default:
				t.Fatalf("%s holds a chain to an unknown root %s", id, fingerprint(root))
			}
		}
		if len(waiting) > 0 {
			return fmt.Errorf("still under the old root: %v", waiting)
		}
		return nil
	})
	t.Logf("every proxy moved to the new root %s after rotate-root", time.Since(rotated).Round(time.Second))
	for _, name := range []string{"frontend", "productcatalog", "catalogdetail"} {
		dir := t.TempDir()
		chain := chainPEM(t, m, "workshop/"+name)
		if out, err := opensslVerify(t, dir, newRootFile, chain); err != nil || !strings.Contains(out, "leaf.pem: OK") {
			t.Errorf("%s: openssl verify against the new root only: %v\n%s", name, err, out)
		}
		if out, err := opensslVerify(t, dir, oldRootFile, chain); err == nil {
			t.Errorf("%s: openssl verify of the new certificate against the old root succeeded:\n%s", name, out)
		}
	}

	// 3. The old root leaves the bundle, and only once every certificate
	// it signed has expired.
	var lastExpiry time.Time
	meshtest.Eventually(t, 150*time.Second, "the old root leaving the bundle", func() error {
		st := apiCA(t, m)
		now := time.Now()
		for _, r := range st.Roots {
			if r.Root.SHA256 == oldFP {
				lastExpiry = r.LastIssuedExpiry
				if r.State != "retiring" {
					t.Errorf("the old root is %q while root 2 issues, want retiring", r.State)
				}
				return fmt.Errorf("the old root is still in the bundle (its last certificate expires %s)", r.LastIssuedExpiry)
			}
		}
		if now.Before(lastExpiry) {
			t.Fatalf("the old root left the bundle at %s, before its last certificate expired at %s", now, lastExpiry)
		}
		if st.BundleSize != 1 || len(st.Roots) != 1 || st.Roots[0].Root.SHA256 != newFP || st.Roots[0].State != "issuing" {
			t.Fatalf("after the old root left: %+v, want root 2 alone, issuing", st)
		}
		return nil
	})
	if lastExpiry.IsZero() || oldMaxNotAfter.After(lastExpiry) {
		t.Errorf("a proxy held a certificate under the old root until %s, the CA's record of its last expiry is %s", oldMaxNotAfter, lastExpiry)
	}
	t.Logf("the old root left %s after rotate-root; its last certificate expired %s after", time.Since(rotated).Round(time.Second), lastExpiry.Sub(rotated).Round(time.Second))
	meshtest.Eventually(t, 30*time.Second, "every proxy trusting the new root alone", func() error {
		for _, id := range ids {
			fps, err := bundleOf(t, m, id)
			if err != nil {
				return err
			}
			if !slices.Equal(fps, []string{newFP}) {
				return fmt.Errorf("%s trusts %v", id, fps)
			}
		}
		return nil
	})

	// palisade ca show, on the running mesh, agrees.
	out, err = m.Palisade("ca", "show", "-o", "json", "--state", filepath.Join(m.State, "ca"))
	if err != nil || !strings.Contains(out, newFP) || strings.Contains(out, oldFP) {
		t.Errorf("palisade ca show after the old root left: %v, want root 2 alone:\n%s", err, out)
	}
	// A workload joining now, with the mesh's root-cert.pem as its
	// bundle, trusts the CA (whose serving certificate is under the new
	// root) and gets a certificate under the new root.
	if got := parsePEM(t, mustRead(t, bundleFile)); len(got) != 1 || fingerprint(got[0]) != newFP {
		t.Errorf("%s holds %d roots after the rotation, want the new root alone", bundleFile, len(got))
	}
	late := startSidecar(t, m, "workshop/late", "late-sa", joinToken(t, m, "workshop", "late-sa"))
	meshtest.Eventually(t, 40*time.Second, "a certificate for a sidecar joining after the rotation", func() error {
		if late.exited() {
			t.Fatalf("the sidecar joining after the rotation exited:\n%s", late.output())
		}
		chain, err := late.chain()
		if err != nil {
			return err
		}
		if fingerprint(chain[len(chain)-1]) != newFP {
			t.Fatalf("the late sidecar's certificate chains to %s, want the new root", fingerprint(chain[len(chain)-1]))
		}
		return nil
	})

	// Traffic keeps flowing on the new root alone.
	time.Sleep(5 * time.Second)
	load.stop(t, time.Since(start))
}

func sorted(xs ...string) []string {
	slices.Sort(xs)
	return xs
}
