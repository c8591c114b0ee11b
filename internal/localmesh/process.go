package localmesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child: an app or a sidecar, in its own process group so
// that stopping it stops whatever it started.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *slog.Logger
	done chan struct{}
	err  error
	mu   sync.Mutex
	stop bool
}

func startProcess(name string, cmd *exec.Cmd, out io.Writer, log *slog.Logger) (*process, error) {
	return startProcessWith(name, cmd, out, log, (*exec.Cmd).Start)
}

// startProcessWith starts cmd with start (e.g. inside a network
// namespace); credentials already in cmd.SysProcAttr are kept.
func startProcessWith(name string, cmd *exec.Cmd, out io.Writer, log *slog.Logger, start func(*exec.Cmd) error) (*process, error) {
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGKILL
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("localmesh: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.mu.Lock()
		stopping := p.stop
		p.mu.Unlock()
		if !stopping {
			log.Error("process exited", "name", name, "err", p.err)
		}
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM to the process group, then SIGKILL after grace.
func (p *process) terminate(grace time.Duration) {
	p.mu.Lock()
	p.stop = true
	p.mu.Unlock()
	if p.exited() {
		return
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	// Whatever the child left in its group goes too.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// waitFor polls check until it succeeds, the process dies, or ctx ends.
func (p *process) waitFor(ctx context.Context, what string, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("localmesh: %s exited before %s: %v%s", p.name, what, p.err, p.logTail())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("localmesh: %s not %s after %s: %w", p.name, what, timeout, last)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail is the last lines the process wrote to its log file, indented
// under a line naming the file, or "" when its output is not a file.
func (p *process) logTail() string {
	f, ok := p.cmd.Stdout.(*os.File)
	if !ok {
		return ""
	}
	b, err := os.ReadFile(f.Name())
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-tailLines):]
	return "\n  last lines of " + f.Name() + ":\n    " + strings.Join(lines, "\n    ")
}

const tailLines = 5

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}
