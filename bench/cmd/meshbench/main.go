// Command meshbench measures Palisade's two-hop mTLS path against a
// direct connection, ghostunnel, HAProxy and nginx on loopback, with fortio as
// the load generator; measures the control plane at scale in-process;
// collects the micro-benchmarks; and writes BENCHMARKS.md.
//
//	meshbench [-quick] [-out BENCHMARKS.md] -bin DIR -fortio PATH [-ghostunnel PATH] [-haproxy PATH] [-nginx PATH]
//	meshbench codes -bin DIR -race-bin DIR -fortio PATH [-n N]
//	meshbench backend HTTP_ADDR TCP_ADDR
//	meshbench scale [-workloads N -services N -policies N]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "backend":
			return runBackend(ctx, args[1:])
		case "scale":
			return runScaleCmd(args[1:])
		case "codes":
			return runCodes(ctx, args[1:])
		}
	}
	return runSuite(ctx, args)
}
