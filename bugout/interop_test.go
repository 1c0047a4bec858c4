package bugout

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodePeer is a real bugout@0.0.13 peer (testdata/node/node-peer.js) run as
// a child process, listening for BitTorrent on 127.0.0.1.
type nodePeer struct {
	Port       int
	Identifier string
	Address    Address
	lines      chan nodeLine
	stdin      io.WriteCloser
	cmd        *exec.Cmd
}

type nodeLine struct {
	Node string          `json:"node"`
	V    json.RawMessage `json:"v"`
}

// startNodePeer runs node-peer.js in room (server mode if ""). It skips
// when the pinned node_modules are absent, unless CI=true.
func startNodePeer(t *testing.T, room string) *nodePeer {
	t.Helper()
	if _, err := os.Stat("testdata/node/node_modules/bugout/package.json"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bugout/testdata/node/node_modules missing: run bash bugout/testdata/node/install.sh (%v)", err)
		}
		t.Skip("bugout/testdata/node/node_modules missing; run bash bugout/testdata/node/install.sh")
	}
	args := []string{"node-peer.js"}
	if room != "" {
		args = append(args, room)
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = "testdata/node"
	cmd.Env = append(os.Environ(), "DEBUG=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	np := &nodePeer{lines: make(chan nodeLine, 256), stdin: stdin, cmd: cmd}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(np.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l nodeLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				t.Logf("node: %s", sc.Bytes())
				continue
			}
			np.lines <- l
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // node-peer.js leaves and exits when stdin ends
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill() // our own child, by its PID
			<-done
		}
		readers.Wait()
	})
	var ready struct {
		Port       int    `json:"port"`
		Identifier string `json:"identifier"`
		Address    string `json:"address"`
	}
	np.next(t, "listening", &ready)
	np.Port, np.Identifier, np.Address = ready.Port, ready.Identifier, Address(ready.Address)
	return np
}

// next waits for the next line of kind and decodes its value into v.
func (np *nodePeer) next(t *testing.T, kind string, v any) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-np.lines:
			if !ok {
				t.Fatalf("node peer exited waiting for %q", kind)
			}
			t.Logf("node %s %s", l.Node, l.V)
			if l.Node == kind {
				if v != nil {
					if err := json.Unmarshal(l.V, v); err != nil {
						t.Fatalf("node %s %s: %v", kind, l.V, err)
					}
				}
				return
			}
		case <-deadline:
			t.Fatalf("no %q from the node peer", kind)
		}
	}
}

// dialNode connects p to the node peer over TCP 127.0.0.1.
func dialNode(t *testing.T, p *Peer, np *nodePeer) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", np.Port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.AddWire(ctx, c); err != nil {
			t.Errorf("AddWire(node) = %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestInteropNode(t *testing.T) {
	np := startNodePeer(t, "test-room")
	if np.Address != "bYwqSagZb5n42M9qXSw2uu3Cpxg9JhZcnd" {
		t.Fatalf("node address %s", np.Address)
	}
	p := newTestPeer(t, "test-room", 7)
	calls := make(chan string, 1)
	p.Register("echo", "echo args", func(_ context.Context, caller Address, args json.RawMessage) (json.RawMessage, error) {
		calls <- string(caller)
		return json.Marshal(map[string]any{"echo": args, "from": "go"})
	})
	dialNode(t, p, np)

	// Each side sees the other.
	waitEvent(t, p, EventSeen, np.Address)
	var seen []string
	np.next(t, "seen", &seen)
	if len(seen) != 1 || seen[0] != string(p.Address()) {
		t.Errorf("node seen %v, want %s", seen, p.Address())
	}
	waitEvent(t, p, EventPing, np.Address)

	// Go broadcast → node.
	if err := p.Send(map[string]string{"hello": "from go"}); err != nil {
		t.Fatal(err)
	}
	var msg []json.RawMessage
	np.next(t, "message", &msg)
	if len(msg) != 2 || string(msg[0]) != fmt.Sprintf("%q", p.Address()) || string(msg[1]) != `{"hello":"from go"}` {
		t.Errorf("node message = %s", msg)
	}

	// Go encrypted DM → node (it asks for a DM back).
	if err := p.SendTo(np.Address, map[string]string{"please": "dm"}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, p, EventMessage, np.Address)
	if !e.Encrypted || string(e.Message) != `{"secret":"for go only"}` {
		t.Errorf("DM from node = %s encrypted %v", e.Message, e.Encrypted)
	}

	// node → Go RPC.
	if err := p.Send(map[string]string{"please": "rpc"}); err != nil {
		t.Fatal(err)
	}
	select {
	case caller := <-calls:
		if caller != string(np.Address) {
			t.Errorf("echo called by %s", caller)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node never called echo")
	}
	var res json.RawMessage
	np.next(t, "rpc-callback", &res)
	if string(res) != `{"echo":{"q":42},"from":"go"}` {
		t.Errorf("node rpc-callback = %s", res)
	}

	// Go → node RPC.
	ctx := context.Background()
	got, err := p.Call(ctx, np.Address, "ping", map[string]int{"x": 1})
	if err != nil || string(got) != `{"x":1,"pong":true}` {
		t.Errorf("Call(node, ping) = %s, %v", got, err)
	}
	got, err = p.Call(ctx, np.Address, "nosuch", nil)
	if err != nil || string(got) != `{"error":"No such API call."}` {
		t.Errorf("Call(node, nosuch) = %s, %v", got, err)
	}

	// Latency: a broadcast to node and its broadcast answer.
	var rtts []time.Duration
	for i := range 20 {
		start := time.Now()
		if err := p.Send(map[string]int{"echo": i}); err != nil {
			t.Fatal(err)
		}
		for {
			e := waitEvent(t, p, EventMessage, np.Address)
			if string(e.Message) == fmt.Sprintf(`{"echoed":%d}`, i) {
				break
			}
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	t.Logf("Go→node→Go broadcast round trip over TCP: min %v median %v max %v (n=%d)", rtts[0], rtts[len(rtts)/2], rtts[len(rtts)-1], len(rtts))

	// Leaving: node emits left for us.
	p.Close()
	var left []string
	np.next(t, "left", &left)
	if len(left) != 1 || left[0] != string(p.Address()) {
		t.Errorf("node left %v", left)
	}
}

// TestInteropNodeServer: the node peer owns the room named after its
// address; the Go client gets "server" and calls it.
func TestInteropNodeServer(t *testing.T) {
	np := startNodePeer(t, "")
	if np.Identifier != string(np.Address) {
		t.Fatalf("server identifier %q", np.Identifier)
	}
	p := newTestPeer(t, np.Identifier, 8)
	dialNode(t, p, np)
	waitEvent(t, p, EventServer, np.Address)
	got, err := p.Call(context.Background(), np.Address, "ping", map[string]string{"s": "v"})
	if err != nil || !strings.Contains(string(got), `"pong":true`) {
		t.Errorf("Call(server, ping) = %s, %v", got, err)
	}
	var rpc []json.RawMessage
	np.next(t, "rpc", &rpc)
}
