package netns

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Command returns a command that runs name with args inside the namespace,
// through ip netns exec (which execs name, so the command's PID is name's).
// As with exec.CommandContext, ctx's end kills the process by PID; Wait then
// gives up on its output pipes after 5 s.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Proc is a process started with [NS.Start].
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // Cmd.Wait's, set before done closes
}

// Start starts cmd (from [NS.Command]) and waits for it in the background.
// t.Cleanup kills it by PID if it is still running and waits for it, so a
// failing test leaves nothing behind.
func (n *NS) Start(t testing.TB, cmd *exec.Cmd) (*Proc, error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd, err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.Stop(0) })
	return p, nil
}

// Done is closed when the process has exited and been waited for.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for status 0), once [Proc.Done] is
// closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process's PID, waits up to grace for it to exit,
// then sends SIGKILL, and returns its exit error. A grace of 0 kills at once.
// Stopping an exited process just returns its exit error.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	if grace > 0 {
		// An error means the process has already exited; done tells.
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-p.done:
			return p.err
		case <-timer.C:
		}
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return p.err
}
