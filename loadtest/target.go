package main

import (
	"bufio"
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

// target is the tracker under load: a process whose RSS and CPU we read.
type target struct {
	url string
	pid int
	cmd *exec.Cmd // set when we started it
}

// checkLoopback refuses any target that is not on this machine's loopback.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("target %s is not on loopback: load goes to 127.0.0.0/8 or ::1 only", raw)
	}
	return nil
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
	cmd := command(addr)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &target{url: "ws://" + addr, pid: cmd.Process.Pid, cmd: cmd}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return t, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.stop()
			return nil, fmt.Errorf("%s did not come up on %s", name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends a signald we started, by its PID.
func (t *target) stop() {
	if t.cmd == nil {
		return
	}
	t.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { t.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.cmd.Process.Kill()
		<-done
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

// cpu returns the target's user+system CPU time so far.
func (t *target) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", t.pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}
