package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// target is the server under load: a process whose RSS and CPU we read.
type target struct {
	url  string // ws://host:port for a tracker, host:port for STUN/TURN
	pid  int
	name string

	// Set when we started it.
	cmd  *exec.Cmd
	out  *lockedBuffer // its output, unless it goes to our stderr
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's, set before done closes
}

// checkLoopback refuses any target that is not on this machine's loopback.
func checkLoopback(raw string) error {
	host := raw
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		host = u.Hostname()
	} else if h, _, err := net.SplitHostPort(raw); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("target %s is not on loopback: load goes to 127.0.0.0/8 or ::1 only", raw)
	}
	return nil
}

// startProc starts cmd and waits for it in the background. Its output is
// kept for error messages unless the caller set cmd.Stdout or cmd.Stderr.
func startProc(name string, cmd *exec.Cmd) (*target, error) {
	t := &target{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = t.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = t.out
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	t.pid = cmd.Process.Pid
	go func() {
		t.err = cmd.Wait()
		close(t.done)
	}()
	return t, nil
}

// exited reports an early exit, with the end of the process's output.
func (t *target) exited() error {
	if t.done == nil {
		return nil
	}
	select {
	case <-t.done:
		return fmt.Errorf("%s exited: %v\n%s", t.name, t.err, t.out.tail(2000))
	default:
		return nil
	}
}

// stop ends a process we started, by its PID: SIGTERM, then SIGKILL after
// 10 s. It does nothing for a target we did not start.
func (t *target) stop() {
	if t.done == nil {
		return
	}
	select {
	case <-t.done:
		return
	default:
	}
	t.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
		t.cmd.Process.Signal(syscall.SIGKILL)
		<-t.done
	}
}

// startSignald builds and starts a fresh signald on a free loopback port with
// the per-connection limits off (every load client comes from 127.0.0.1).
func startSignald(ctx context.Context, extra ...string) (*target, error) {
	bin, err := buildSignald(ctx)
	if err != nil {
		return nil, err
	}
	return startTarget(ctx, "signald", func(addr string) *exec.Cmd {
		args := append([]string{"-addr", addr, "-turn=false", "-max-conns-per-ip", "-1", "-announce-rate", "-1", "-log-level", "warn"}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		return cmd
	})
}

// startTarget starts the command made for a free loopback address and
// waits until its /healthz answers.
func startTarget(ctx context.Context, name string, command func(addr string) *exec.Cmd) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	t, err := startProc(name, command(addr))
	if err != nil {
		return nil, err
	}
	t.url = "ws://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return t, nil
		}
		if err := t.exited(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.stop()
			return nil, fmt.Errorf("%s did not come up on %s", name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var built struct {
	sync.Mutex
	bin string
}

// buildSignald builds signald once per process, into a directory the
// process removes at exit (see main).
func buildSignald(ctx context.Context) (string, error) {
	built.Lock()
	defer built.Unlock()
	if built.bin != "" {
		return built.bin, nil
	}
	dir, err := os.MkdirTemp("", "loadtest")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "signald")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/boxsignal/boxsignal/cmd/signald")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build signald: %w", err)
	}
	built.bin = bin
	return bin, nil
}

// removeBuilt deletes the signald binary built by this process.
func removeBuilt() {
	built.Lock()
	defer built.Unlock()
	if built.bin != "" {
		os.RemoveAll(filepath.Dir(built.bin))
		built.bin = ""
	}
}

// rss returns the target's resident set in bytes.
func (t *target) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", t.pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", t.pid)
}

// cpuTimes returns the target's user and system CPU time so far, all
// threads, from /proc/PID/stat.
func (t *target) cpuTimes() (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", t.pid)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", t.pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", t.pid, f[11], f[12])
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut) * time.Second / clkTck, time.Duration(st) * time.Second / clkTck, nil
}

// cpuWindow is the target's CPU between two cpuTimes readings.
type cpuWindow struct{ user, sys time.Duration }

func (t *target) cpuStart() (cpuWindow, error) {
	u, s, err := t.cpuTimes()
	return cpuWindow{u, s}, err
}

// cpuSince returns the CPU time spent since w, and the share of it spent in
// the kernel.
func (t *target) cpuSince(w cpuWindow) (total time.Duration, sysShare float64) {
	u, s, err := t.cpuTimes()
	if err != nil {
		return 0, 0
	}
	total = u - w.user + s - w.sys
	if total > 0 {
		sysShare = float64(s-w.sys) / float64(total)
	}
	return total, sysShare
}

// selfCPU is the load generator's own CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
