package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The servers listen for STUN/TURN on the namespace's loopback; relayed
// addresses are on its veth (benchNS.relay).
const (
	listenAddr = "127.0.0.1"
	listenPort = 3478
	relayPorts = "49152-65535"
	realm      = "boxsignal"
)

// proc is a process this program started; it is stopped only through its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports an early exit, with the process's output.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.out.tail(2000))
	default:
		return nil
	}
}

// stop sends SIGTERM to the PID, waits up to grace, then sends SIGKILL.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// serverSpec says how to start one server in the namespace.
type serverSpec struct {
	name string
	args func(ns *benchNS, dir string) (string, []string)
}

func signaldSpec(bin string) serverSpec {
	return serverSpec{name: "signald", args: func(ns *benchNS, dir string) (string, []string) {
		return bin, []string{
			"-addr", "127.0.0.1:18000",
			"-turn-udp", fmt.Sprintf("%s:%d", listenAddr, listenPort),
			"-turn-tcp", fmt.Sprintf("%s:%d", listenAddr, listenPort),
			"-turn-secret", secret,
			"-turn-realm", realm,
			"-turn-relay-ip", ns.relay.String(),
			"-turn-relay-ports", relayPorts,
			// The peer of each allocation is the other allocation's relayed
			// address, which is the Box's own: the filter refuses it unless
			// allowed. No other address is opened.
			"-turn-allow-peers", ns.relay.String() + "/32",
			"-turn-user-quota", "-1",
			"-turn-total-quota", "-1",
			"-turn-bandwidth", "-1",
			"-turn-unauth-rate", "-1",
			"-data-dir", dir,
			"-drain-timeout", "1s",
			"-log-level", "warn",
		}
	}}
}

func coturnSpec(bin string) serverSpec {
	return serverSpec{name: "coturn", args: func(ns *benchNS, dir string) (string, []string) {
		lo, hi, _ := strings.Cut(relayPorts, "-")
		return bin, []string{
			"--listening-ip", listenAddr,
			"--listening-port", strconv.Itoa(listenPort),
			"--relay-ip", ns.relay.String(),
			"--min-port", lo, "--max-port", hi,
			"--use-auth-secret", "--static-auth-secret", secret,
			"--realm", realm,
			"--no-tls", "--no-dtls", "--no-cli",
			"--log-file", "stdout", "--simple-log",
			"--pidfile", filepath.Join(dir, "turnserver.pid"),
			"--userdb", filepath.Join(dir, "turndb"),
		}
	}}
}

func startServer(ns *benchNS, spec serverSpec, dir string) (*proc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	bin, args := spec.args(ns, dir)
	return startProc(spec.name, ns.command(bin, args...))
}

// cpuSeconds is utime+stime of every thread of pid, from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	// USER_HZ, the unit of /proc times, is 100 on every Linux ABI.
	return float64(ut+st) / 100, nil
}

// lockedBuffer collects a process's output for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep memory bounded; the tail is what matters
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
