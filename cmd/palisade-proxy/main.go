// Command palisade-proxy is Palisade's sidecar: it stands beside one
// workload, holds its identity, and secures every connection in and out.
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
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "palisade-proxy:", err)
		os.Exit(1)
	}
}
