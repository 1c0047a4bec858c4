package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/bugoutlab"
	"github.com/boxsignal/boxsignal/internal/netns"
)

// board runs `peer messageboard` in the lab's namespace and returns its
// process and address once it is ready.
func startBoard(t *testing.T, ctx context.Context, lab *bugoutlab.Lab, bin, dir string) (*netns.Proc, string) {
	t.Helper()
	cmd := lab.NS.Command(ctx, bin, "messageboard", "-data", dir, "-tracker", lab.TrackerURL, "-log-level", "info")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := new(bugoutlab.Buffer)
	cmd.Stderr = logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("messageboard log:\n%s", logs.String())
		}
	})
	p, err := lab.NS.Start(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var addr string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("messageboard exited: %v", p.Err())
			}
			t.Logf("messageboard: %s", l)
			if a, ok := strings.CutPrefix(l, "address: "); ok {
				addr = a
			}
			if strings.HasPrefix(l, "ready") {
				go func() { // drain until exit
					for range lines {
					}
				}()
				return p, addr
			}
		case <-timeout:
			t.Fatal("messageboard not ready in 20 s")
		}
	}
}

type rpcResult struct {
	Call   string
	Result json.RawMessage
}

func call(t *testing.T, n *bugoutlab.Node, name string, args any) json.RawMessage {
	t.Helper()
	n.Do(t, map[string]any{"rpc": []any{nil, name, args}})
	var r rpcResult
	n.Next(t, "rpc-result", 15*time.Second, &r)
	if r.Call != name {
		t.Fatalf("result for %q, want %q", r.Call, name)
	}
	return r.Result
}

// TestMessageboardServesNode serves the Go messageboard to a real
// bugout@0.0.13 node client over WebRTC: list, post, list; then kills the
// Go process with SIGKILL, restarts it and lists again with a new client.
// It reports the idle messageboard's RSS.
func TestMessageboardServesNode(t *testing.T) {
	bugoutlab.NeedNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Second)
	defer cancel()
	lab := bugoutlab.New(t, ctx)
	bin := bugoutlab.Build(t, ctx, "./cmd/peer")
	dir := t.TempDir()
	board, addr := startBoard(t, ctx, lab, bin, dir)
	time.Sleep(2 * time.Second)
	t.Logf("idle peer messageboard RSS, no client: %s", rss(t, board.Cmd.Process.Pid))

	n := lab.StartNode(t, ctx, addr)
	n.Next(t, "server", 40*time.Second, nil)
	if got := call(t, n, "list", nil); string(got) != "[]" {
		t.Errorf("first list = %s, want []", got)
	}
	if got := call(t, n, "post", "hello from node"); string(got) != "true" {
		t.Errorf("post = %s, want true", got)
	}
	var refresh []json.RawMessage
	n.Next(t, "message", 10*time.Second, &refresh)
	if len(refresh) != 2 || string(refresh[1]) != `"refresh"` {
		t.Errorf("after post node got %s, want the server's \"refresh\"", refresh)
	}
	if got := call(t, n, "post", strings.Repeat("x", 280)); string(got) != "{}" {
		t.Errorf("post of 280 chars = %s, want {} (the original's false, sent truthy)", got)
	}
	var posts []struct {
		Address string
		M       string
		T       int64
	}
	if err := json.Unmarshal(call(t, n, "list", nil), &posts); err != nil || len(posts) != 1 || posts[0].M != "hello from node" || posts[0].Address != n.Address {
		t.Fatalf("list after post = %+v (%v), want one post by %s", posts, err, n.Address)
	}
	if got := call(t, n, "ping", map[string]int{"n": 3}); !strings.Contains(string(got), `"pong":`) {
		t.Errorf("ping = %s", got)
	}

	time.Sleep(3 * time.Second) // idle: heartbeats only
	t.Logf("idle peer messageboard RSS: %s (1 client connected, %d post)", rss(t, board.Cmd.Process.Pid), len(posts))

	board.Stop(0) // SIGKILL: the acknowledged post must be on disk
	_, addr2 := startBoard(t, ctx, lab, bin, dir)
	if addr2 != addr {
		t.Fatalf("address after restart %s, want %s", addr2, addr)
	}
	n2 := lab.StartNode(t, ctx, addr)
	n2.Next(t, "server", 40*time.Second, nil)
	posts = nil
	if err := json.Unmarshal(call(t, n2, "list", nil), &posts); err != nil || len(posts) != 1 || posts[0].M != "hello from node" {
		t.Fatalf("list after kill -9 and restart = %+v (%v), want the first post", posts, err)
	}

	// The Go CLI as the client: peer rpc ADDRESS list.
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	out, err := lab.NS.Command(rctx, bin, "rpc", "-data", t.TempDir(), "-tracker", lab.TrackerURL, "-timeout", "25s", addr, "list").Output()
	if err != nil || !strings.Contains(string(out), `"m":"hello from node"`) {
		t.Errorf("peer rpc %s list = %q, %v; want the first post", addr, out, err)
	}
}

// rss is VmRSS of pid from /proc.
func rss(t *testing.T, pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
