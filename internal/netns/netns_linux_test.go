package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/boxsignal/boxsignal/internal/netns"
)

// helperEnv makes the test binary act as a server inside a namespace.
const helperEnv = "NETNS_TEST_HELPER_LISTEN"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(serveOnce(addr))
	}
	goleak.VerifyTestMain(m)
}

// serveOnce listens on addr, says "ready" on stdout, and answers one
// connection with a greeting naming the address it was reached on.
func serveOnce(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	c, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(c, "hello from %s\n", c.LocalAddr())
	c.Close()
	return 0
}

func TestNamespace(t *testing.T) {
	var name string
	var pid int
	t.Run("use", func(t *testing.T) {
		n := netns.New(t)
		name = n.Name()

		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := n.Command(ctx, "ip", "-o", "-4", "addr", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in %s: %v: %s", name, err, out)
		}
		for _, want := range []string{"lo", "inet 127.0.0.1/8", "inet " + netns.Prefix.String()} {
			if !strings.Contains(string(out), want) {
				t.Errorf("ip addr in %s = %q, want it to contain %q", name, out, want)
			}
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, ok := a.(*net.IPNet); ok && p.IP.Equal(net.IP(n.Addr().AsSlice())) {
					t.Errorf("test address %v is on an interface outside the namespace", n.Addr())
				}
			}
		}

		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort(n.Addr().String(), "8000")
		cmd := n.Command(ctx, exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+addr)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = t.Output()
		p, err := n.Start(t, cmd)
		if err != nil {
			t.Fatal(err)
		}
		pid = p.Cmd.Process.Pid
		r := bufio.NewReader(stdout)
		if line, err := r.ReadString('\n'); line != "ready\n" {
			t.Fatalf("helper said %q, %v; want ready", line, err)
		}

		c, err := n.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("DialContext(%s) = %v", addr, err)
		}
		defer c.Close()
		got, err := io.ReadAll(c)
		if want := "hello from " + addr + "\n"; string(got) != want || err != nil {
			t.Errorf("read from %s = %q, %v; want %q", addr, got, err, want)
		}
		select {
		case <-p.Done():
			if err := p.Err(); err != nil {
				t.Errorf("helper exit: %v", err)
			}
		case <-ctx.Done():
			t.Errorf("helper did not exit after serving")
		}
	})
	if name == "" {
		return // skipped
	}
	if _, err := os.Stat(filepath.Join("/run/netns", name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still exists after the test: stat = %v", name, err)
	}
	if pid != 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after the test: kill 0 = %v", pid, err)
		}
	}
}

// TestCleanupKills checks that a process left running is killed with its
// namespace.
func TestCleanupKills(t *testing.T) {
	var name string
	var p *netns.Proc
	t.Run("leave running", func(t *testing.T) {
		n := netns.New(t)
		name = n.Name()
		var err error
		p, err = n.Start(t, n.Command(context.Background(), "sleep", "300"))
		if err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		return
	}
	select {
	case <-p.Done():
	default:
		t.Fatalf("sleep in %s still running after the test", name)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still exists after the test: stat = %v", name, err)
	}
}
