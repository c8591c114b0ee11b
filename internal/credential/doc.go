// Package credential delivers a gateway's TLS credentials from Kubernetes
// Secrets, as Istio resolves a Gateway server's credentialName: a Secret of
// that name in the gateway's namespace, kubernetes.io/tls (tls.crt,
// tls.key, and ca.crt for MUTUAL) or generic (cert, key, cacert), with the
// client CA also taken from a Secret named NAME-cacert.
//
// The proxy must not link client-go, so Sync runs beside it (`palisade
// gateway-credentials`) and keeps the gateway's --credentials-dir current:
// one directory per credential name, swapped atomically through a symlink
// when the Secret changes (a cert-manager Certificate renewed), so that
// new connections see the new certificate and open ones are untouched.
// Only the credential names it is given are delivered, so no other
// Secret's key is copied to disk. A
// Secret that does not hold a valid key pair is logged and the last good
// files stay; a deleted Secret removes its credential (fail closed).
package credential
