package bugoutlab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/netns"
)

// Node is a real bugout@0.0.13 peer over WebRTC (@roamhq/wrtc) run in the
// namespace by bugout/testdata/node/node-rtc-peer.js.
type Node struct {
	Address    string // its own address
	Identifier string // its room
	lines      chan NodeLine
	stdin      interface{ Write([]byte) (int, error) }
	proc       *netns.Proc
	stderr     *Buffer
	past       []NodeLine // lines read while waiting for another kind; only Next uses it
}

// NodeLine is one event line of the node peer.
type NodeLine struct {
	Node string          `json:"node"`
	V    json.RawMessage `json:"v"`
}

// NodeDir is bugout/testdata/node in the module.
func NodeDir(t testing.TB) string { return filepath.Join(ModuleRoot(t), "bugout", "testdata", "node") }

// NeedNode skips the test (fails it under CI=true) unless node and the
// pinned node_modules with @roamhq/wrtc are installed.
func NeedNode(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		netns.Unavailable(t, "node is needed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(NodeDir(t), "node_modules", "@roamhq", "wrtc", "package.json")); err != nil {
		netns.Unavailable(t, "bugout/testdata/node/node_modules (with @roamhq/wrtc) missing: run bash bugout/testdata/node/install.sh (%v)", err)
	}
}

// StartNode runs a node Bugout peer in room, announcing to the lab's
// signald, and waits until it has announced. It ends with the test: stdin
// closes (it leaves), then it is killed by PID if still running.
func (l *Lab) StartNode(t testing.TB, ctx context.Context, room string) *Node {
	t.Helper()
	NeedNode(t)
	node, _ := exec.LookPath("node")
	dir := NodeDir(t)
	cmd := l.NS.Command(ctx, node, filepath.Join(dir, "node-rtc-peer.js"), room, l.TrackerURL)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBUG=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{lines: make(chan NodeLine, 1024), stdin: stdin, stderr: new(Buffer)}
	cmd.Stderr = n.stderr
	p, err := l.NS.Start(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	n.proc = p
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(n.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var nl NodeLine
			if json.Unmarshal(sc.Bytes(), &nl) != nil {
				continue
			}
			n.lines <- nl
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-p.Done():
		case <-time.After(3 * time.Second):
		}
		p.Stop(0)
		readers.Wait()
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", room, n.stderr.String())
		}
	})
	var ready struct{ Address, Identifier string }
	n.Next(t, "ready", 20*time.Second, &ready)
	n.Address, n.Identifier = ready.Address, ready.Identifier
	return n
}

// Next waits up to d for the next line of kind and decodes its value into
// v (if not nil). Lines of other kinds read meanwhile are kept for later
// calls, in order. A node crash (wrtc's known SIGSEGV) is named as such.
// Call it from one goroutine.
func (n *Node) Next(t testing.TB, kind string, d time.Duration, v any) {
	t.Helper()
	decode := func(l NodeLine) {
		if v != nil {
			if err := json.Unmarshal(l.V, v); err != nil {
				t.Fatalf("node %s %s: %v", kind, l.V, err)
			}
		}
	}
	for i, l := range n.past {
		if l.Node == kind {
			n.past = append(n.past[:i], n.past[i+1:]...)
			decode(l)
			return
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-n.lines:
			if !ok {
				t.Fatalf("node peer exited waiting for %q: %s", kind, n.exitReason())
			}
			t.Logf("node %s %s", l.Node, l.V)
			if l.Node != kind {
				if len(n.past) < 4096 {
					n.past = append(n.past, l)
				}
				continue
			}
			decode(l)
			return
		case <-timer.C:
			t.Fatalf("node peer: no %q in %v", kind, d)
		}
	}
}

func (n *Node) exitReason() string {
	select {
	case <-n.proc.Done():
	case <-time.After(2 * time.Second):
		return "still running, stdout closed"
	}
	var ee *exec.ExitError
	if errors.As(n.proc.Err(), &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "node helper crashed with " + ws.Signal().String() + " (a known @roamhq/wrtc crash, not a failed check)"
		}
	}
	return "exit: " + errString(n.proc.Err())
}

func errString(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// Do sends one command line (see node-rtc-peer.js).
func (n *Node) Do(t testing.TB, cmd any) {
	t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("node command: %v", err)
	}
}

// Proc is the node process.
func (n *Node) Proc() *netns.Proc { return n.proc }
