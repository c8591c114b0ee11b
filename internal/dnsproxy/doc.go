// Package dnsproxy is the sidecar's DNS proxy, as Istio's DNS proxying
// (ISTIO_META_DNS_CAPTURE): on 127.0.0.1:15053, UDP and TCP, where the
// capture rules send the workload's DNS queries, it answers A and AAAA
// for mesh names (service hosts and ServiceEntry hosts with addresses)
// from the config the control plane pushed, and forwards every other
// query to the upstream resolvers of /etc/resolv.conf.
//
// Search-domain aware as Istio's is: a stub resolver that appends a
// search domain to a mesh name (productcatalog.workshop +
// workshop.svc.cluster.local) gets the mesh name's addresses under a
// CNAME at once, rather than NXDOMAIN and a query per search domain. A
// mesh name with no address of the asked family gets an empty answer
// (NODATA), not a forwarded query. Answers carry a 30 s TTL, Istio's.
//
// https://istio.io/latest/docs/ops/configuration/traffic-management/dns-proxy/
package dnsproxy
