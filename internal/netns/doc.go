// Package netns makes the network a local mesh runs its workloads in when
// they are isolated (`palisade up --isolate`): named network namespaces
// (as `ip netns` makes them), a bridge in a namespace of its own standing
// for the wire between machines, "host" namespaces that route for the
// workloads they carry, and one namespace per workload with its own
// address in 10.250.0.0/16. It also runs code, listeners and processes
// inside a namespace.
//
// Nothing is created in the namespace the caller runs in, so deleting the
// topology's namespaces removes every link, address, route and iptables
// rule it made. A record of the namespaces is written before any is made,
// so the next start can remove what a crash left (Remove).
package netns
