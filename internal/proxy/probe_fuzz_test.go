package proxy

import "testing"

func FuzzParseAppProbers(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"/app-health/web/livez":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"},"timeoutSeconds":1}}`,
		`{"/app-health/db/readyz":{"tcpSocket":{"port":"5432"}}}`, `{"/x":{}}`, `{"/app-health/a/livez":{"httpGet":{"port":0}}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		probes, err := ParseAppProbers(s)
		if err != nil {
			return
		}
		for path, p := range probes {
			if !validProbePath(path) || (p.HTTPGet == nil) == (p.TCPSocket == nil) {
				t.Fatalf("accepted %q: %+v", path, p)
			}
		}
	})
}
