package bugout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// newTestPeer makes a peer with a fixed seed byte in room.
func newTestPeer(t *testing.T, room string, seed byte, mod ...func(*Config)) *Peer {
	t.Helper()
	id, err := IdentityFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Identity: id, Identifier: room, Heartbeat: -1, Logger: testLogger(t).With("peer", seed)}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// wireUp runs AddWire on both ends of a stream pair; Cleanup waits for them.
func wireUp(t *testing.T, a, b *Peer, ca, cb io.ReadWriteCloser) {
	t.Helper()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for _, x := range []struct {
		p *Peer
		c io.ReadWriteCloser
	}{{a, ca}, {b, cb}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := x.p.AddWire(ctx, x.c); err != nil {
				t.Logf("AddWire: %v", err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func pipe(t *testing.T, a, b *Peer) {
	ca, cb := net.Pipe()
	wireUp(t, a, b, ca, cb)
}

func tcp(t *testing.T, a, b *Peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cb, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	wireUp(t, a, b, ca, cb)
}

// waitEvent reads p's events until one of type typ from addr (any if "").
func waitEvent(t *testing.T, p *Peer, typ EventType, from Address) Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-p.Events():
			if !ok {
				t.Fatalf("%v: events closed waiting for %s", p, typ)
			}
			if e.Type == typ && (from == "" || e.Address == from) {
				return e
			}
		case <-deadline:
			t.Fatalf("%v: no %s event from %q", p, typ, from)
		}
	}
}

func TestTwoPeers(t *testing.T) {
	for _, tr := range []struct {
		name    string
		connect func(*testing.T, *Peer, *Peer)
	}{{"pipe", pipe}, {"tcp", tcp}} {
		t.Run(tr.name, func(t *testing.T) {
			a := newTestPeer(t, "test-room", 1)
			b := newTestPeer(t, "test-room", 2)
			b.Register("echo", "echo args", func(_ context.Context, caller Address, args json.RawMessage) (json.RawMessage, error) {
				return json.Marshal(map[string]any{"caller": caller, "args": args})
			})
			b.Register("fail", "always fails", func(context.Context, Address, json.RawMessage) (json.RawMessage, error) {
				return nil, errors.New("nope")
			})
			b.Register("boom", "panics", func(context.Context, Address, json.RawMessage) (json.RawMessage, error) {
				panic("boom")
			})
			b.Register("null", "returns null", func(context.Context, Address, json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage("null"), nil
			})
			tr.connect(t, a, b)
			waitEvent(t, a, EventSeen, b.Address())
			waitEvent(t, b, EventSeen, a.Address())
			waitEvent(t, a, EventPing, b.Address())

			if err := a.Send(map[string]any{"hello": "world"}); err != nil {
				t.Fatal(err)
			}
			e := waitEvent(t, b, EventMessage, a.Address())
			if string(e.Message) != `{"hello":"world"}` || e.Encrypted {
				t.Errorf("broadcast = %s encrypted %v", e.Message, e.Encrypted)
			}
			if err := a.SendTo(b.Address(), map[string]string{"secret": "hi"}); err != nil {
				t.Fatal(err)
			}
			e = waitEvent(t, b, EventMessage, a.Address())
			if string(e.Message) != `{"secret":"hi"}` || !e.Encrypted {
				t.Errorf("DM = %s encrypted %v", e.Message, e.Encrypted)
			}

			ctx := context.Background()
			for _, c := range []struct {
				call string
				args any
				want string
			}{
				{"ping", map[string]int{"x": 1}, `{"pong":true,"x":1}`},
				{"echo", []int{1, 2}, fmt.Sprintf(`{"args":[1,2],"caller":%q}`, a.Address())},
				{"nosuch", nil, `{"error":"No such API call."}`},
				{"fail", nil, `{"error":"nope"}`},
				{"boom", nil, `{"error":"internal error"}`},
				{"null", nil, `{}`},
			} {
				res, err := a.Call(ctx, b.Address(), c.call, c.args)
				if err != nil || string(res) != c.want {
					t.Errorf("Call(%s) = %s, %v; want %s", c.call, res, err, c.want)
				}
			}
			// And the other way.
			res, err := b.Call(ctx, a.Address(), "ping", map[string]string{"y": "z"})
			if err != nil || string(res) != `{"pong":true,"y":"z"}` {
				t.Errorf("b.Call(ping) = %s, %v", res, err)
			}
			e = waitEvent(t, a, EventRPC, b.Address())
			if e.Call != "ping" || string(e.Args) != `{"y":"z"}` || len(e.Nonce) != 16 {
				t.Errorf("rpc event = %+v", e)
			}

			b.Close()
			waitEvent(t, a, EventLeft, b.Address())
			if _, err := a.Call(ctx, "bNoSuchAddress", "ping", nil); !errors.Is(err, ErrUnknownPeer) {
				t.Errorf("Call(unknown) = %v, want ErrUnknownPeer", err)
			}
		})
	}
}

// TestGossipChain: A–B–C with no A–C wire; A's DM and RPC reach C through B.
func TestGossipChain(t *testing.T) {
	a := newTestPeer(t, "chain", 1)
	b := newTestPeer(t, "chain", 2)
	c := newTestPeer(t, "chain", 3)
	pipe(t, a, b)
	pipe(t, b, c)
	waitEvent(t, a, EventSeen, c.Address())
	waitEvent(t, c, EventSeen, a.Address())
	if err := a.SendTo(c.Address(), map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, c, EventMessage, a.Address())
	if !e.Encrypted || string(e.Message) != `{"n":1}` {
		t.Errorf("DM via B = %+v", e)
	}
	res, err := a.Call(context.Background(), c.Address(), "ping", nil)
	if err != nil || string(res) != `{"pong":true}` {
		t.Errorf("Call via B = %s, %v", res, err)
	}
	// B saw the DM only as an envelope it could not open.
	for len(b.Events()) > 0 {
		if e := <-b.Events(); e.Type == EventMessage {
			t.Errorf("B got %+v", e)
		}
	}
}

func TestServerRoom(t *testing.T) {
	s := newTestPeer(t, "", 0x23) // identifier = own address
	if s.Identifier() != "bYwqSagZb5n42M9qXSw2uu3Cpxg9JhZcnd" {
		t.Fatalf("server identifier = %q", s.Identifier())
	}
	c := newTestPeer(t, string(s.Address()), 4)
	pipe(t, s, c)
	waitEvent(t, c, EventServer, s.Address())
}

func TestWireRefusals(t *testing.T) {
	a := newTestPeer(t, "room-a", 1)
	b := newTestPeer(t, "room-b", 2)
	ca, cb := net.Pipe()
	errs := make(chan error, 2)
	go func() { errs <- a.AddWire(context.Background(), ca) }()
	go func() { errs <- b.AddWire(context.Background(), cb) }()
	// The side that reads the other's handshake first refuses it; the other
	// may see only the closed stream.
	if err1, err2 := <-errs, <-errs; !errors.Is(err1, ErrWrongInfoHash) && !errors.Is(err2, ErrWrongInfoHash) {
		t.Errorf("AddWire across rooms = %v, %v; want ErrWrongInfoHash", err1, err2)
	}

	// A second wire with the same remote peer id is refused.
	c := newTestPeer(t, "room-a", 3)
	pipe(t, a, c)
	waitEvent(t, a, EventSeen, c.Address())
	ca, cb = net.Pipe()
	go func() { errs <- a.AddWire(context.Background(), ca) }()
	go func() { errs <- c.AddWire(context.Background(), cb) }()
	if err1, err2 := <-errs, <-errs; !errors.Is(err1, ErrDuplicateWire) && !errors.Is(err2, ErrDuplicateWire) {
		t.Errorf("duplicate wire: %v, %v; want ErrDuplicateWire", err1, err2)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	a := newTestPeer(t, "room", 1)
	b := newTestPeer(t, "room", 2)
	pipe(t, a, b)
	waitEvent(t, a, EventSeen, b.Address())
	block := make(chan struct{})
	b.Register("slow", "", func(ctx context.Context, _ Address, _ json.RawMessage) (json.RawMessage, error) {
		close(block)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	go a.Call(context.Background(), b.Address(), "slow", nil) // ends with ErrClosed
	<-block
	done := make(chan struct{})
	go func() { b.Close(); a.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := a.Send(map[string]int{"x": 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
	if err := a.AddWire(context.Background(), nopRWC{}); !errors.Is(err, ErrClosed) {
		t.Errorf("AddWire after Close = %v", err)
	}
}

type nopRWC struct{}

func (nopRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopRWC) Write(b []byte) (int, error) { return len(b), nil }
func (nopRWC) Close() error                { return nil }

func TestIdentityNeverPrintsKeys(t *testing.T) {
	id, _ := IdentityFromSeed(bytes.Repeat([]byte{0x23}, 32))
	p := newTestPeer(t, "room", 0x23)
	cfg := Config{Identity: id}
	for _, s := range []string{
		fmt.Sprint(id), fmt.Sprintf("%+v", id), fmt.Sprintf("%#v", id), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), fmt.Sprintf("%v", *p.box),
	} {
		for _, secret := range []string{id.Seed(), "232323", "[35 35 35", "0x23, 0x23", "#####"} {
			if bytes.Contains([]byte(s), []byte(secret)) {
				t.Errorf("%q shows key material %q", s, secret)
			}
		}
	}
	if got := fmt.Sprint(id); got != "bugout.Identity(bYwqSagZb5n42M9qXSw2uu3Cpxg9JhZcnd)" {
		t.Errorf("String = %q", got)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	p := newTestPeer(t, "room", 1, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	ca, cb := net.Pipe()
	defer cb.Close()
	go io.Copy(io.Discard, cb) // reads our handshake, never answers
	if err := p.AddWire(context.Background(), ca); !errors.Is(err, ErrHandshakeTimeout) {
		t.Errorf("AddWire to a silent stream = %v, want ErrHandshakeTimeout", err)
	}
}

// TestPeerTimeout: a peer silent for PeerTimeout gets timeout and left.
func TestPeerTimeout(t *testing.T) {
	a := newTestPeer(t, "room", 1, func(c *Config) {
		c.Heartbeat = 30 * time.Millisecond
		c.PeerTimeout = 150 * time.Millisecond
	})
	b := newTestPeer(t, "room", 2) // no heartbeat: silent after its first ping
	pipe(t, a, b)
	waitEvent(t, a, EventSeen, b.Address())
	waitEvent(t, a, EventTimeout, b.Address())
	waitEvent(t, a, EventLeft, b.Address())
	// b keeps hearing a's heartbeat pings.
	waitEvent(t, b, EventPing, a.Address())
	if n := len(a.Peers()); n != 0 {
		t.Errorf("a still has %d peers", n)
	}
	if n := len(b.Peers()); n != 1 {
		t.Errorf("b has %d peers, want 1", n)
	}
}
