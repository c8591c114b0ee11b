package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Namespace is a named network namespace, as `ip netns` names them
// (/run/netns/NAME).
type Namespace string

// Path is the namespace's bind mount.
func (n Namespace) Path() string { return "/run/netns/" + string(n) }

// Exists reports whether the namespace is there.
func (n Namespace) Exists() bool {
	_, err := os.Stat(n.Path())
	return err == nil
}

// Do runs f on an OS thread that has entered n, then moves the thread back
// to the namespace it came from. Sockets f opens and processes it starts
// live in n; everything else is as usual. A thread that cannot go back is
// never reused: it ends with the goroutine.
func (n Namespace) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: own namespace: %w", err)
			return
		}
		defer home.Close()
		target, err := os.Open(n.Path())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: %s: %w", n, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter %s: %w", n, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime ends this thread with the goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("netns: leave %s: %w", n, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Start starts cmd inside n. The child keeps the namespace for its life;
// cmd.SysProcAttr (credentials, process group) applies as usual.
func (n Namespace) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// Run runs a command inside n, with stdin when not empty, and returns its
// combined output (capture.Runner).
func (n Namespace) Run(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := n.Start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("netns %s: %s %s: %w: %s", n, name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// Listen opens a listener inside n.
func (n Namespace) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Dial opens a connection from inside n.
func (n Namespace) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// ip runs iproute2 in the current namespace.
func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Add makes the namespace, with its loopback up.
func Add(ctx context.Context, n Namespace) error {
	if err := ip(ctx, "netns", "add", string(n)); err != nil {
		return err
	}
	return ip(ctx, "-n", string(n), "link", "set", "lo", "up")
}

// Delete removes the namespace, and with it every link and rule inside;
// veth pairs go with either end. A namespace already gone is no error.
func Delete(ctx context.Context, n Namespace) error {
	if !n.Exists() {
		return nil
	}
	return ip(ctx, "netns", "del", string(n))
}
