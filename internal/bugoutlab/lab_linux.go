package bugoutlab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/netns"
)

// TrackerPort is signald's port in the namespace (new, so it is free).
const TrackerPort = "8000"

// Lab is a namespace with a running signald.
type Lab struct {
	NS         *netns.NS
	Addr       string       // 198.18.0.1
	TrackerURL string       // ws://198.18.0.1:8000
	HTTP       *http.Client // dials into the namespace
	Tracker    *netns.Proc
	TrackerLog *Buffer
}

// New makes the namespace, builds and starts signald in it and waits until
// it is healthy. BUGOUTLAB_SIGNALD names a prebuilt signald to use instead. Everything is undone by t.Cleanup. It skips (fails under
// CI=true) without root.
func New(t testing.TB, ctx context.Context) *Lab {
	t.Helper()
	n := netns.New(t)
	bin := os.Getenv("BUGOUTLAB_SIGNALD") // a prebuilt signald, e.g. of another tree
	if bin == "" {
		bin = Build(t, ctx, "./cmd/signald")
	}
	l := &Lab{NS: n, Addr: n.Addr().String(), TrackerLog: new(Buffer)}
	hostport := net.JoinHostPort(l.Addr, TrackerPort)
	l.TrackerURL = "ws://" + hostport
	tr := &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	l.HTTP = &http.Client{Transport: tr}
	cmd := n.Command(ctx, bin, "-addr", hostport, "-turn=false")
	cmd.Stdout, cmd.Stderr = l.TrackerLog, l.TrackerLog
	p, err := n.Start(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	l.Tracker = p
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("signald log:\n%s", l.TrackerLog.String())
		}
	})
	if err := l.waitHealthy(ctx, "http://"+hostport+"/healthz"); err != nil {
		t.Fatalf("signald on %s: %v", hostport, err)
	}
	return l
}

func (l *Lab) waitHealthy(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	client := &http.Client{Transport: l.HTTP.Transport, Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s = %d", url, resp.StatusCode)
		}
		last = err
		select {
		case <-l.Tracker.Done():
			return fmt.Errorf("exited before it was healthy: %v (last poll: %v)", l.Tracker.Err(), last)
		case <-ctx.Done():
			return fmt.Errorf("not healthy in time: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ModuleRoot is the repository root, found from the working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	t.Fatal("go.mod not found above the working directory")
	return ""
}

// Build builds the Go package pkg (relative to the module root) into the
// test's temporary directory and returns the binary's path.
func Build(t testing.TB, ctx context.Context, pkg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Buffer collects a process's output; safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the output's lines containing sub.
func (b *Buffer) Lines(sub string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}
