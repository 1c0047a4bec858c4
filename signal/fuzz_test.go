package signal_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/coder/websocket"
)

// fuzzSwarm is where every fuzz connection holds a peer (fuzzPeer(i)), so
// that inputs announcing offers there are relayed to the other connections.
var fuzzSwarm = id("fuzz-swarm")

func fuzzPeer(i int) wire.Hash { return id(fmt.Sprint("fuzz-peer", i)) }

// fuzzLimit is the tracker's MaxMessageBytes in FuzzHandler: small, so the
// fuzzer reaches it, and larger than the client frames in wire/testdata.
const fuzzLimit = 8 << 10

// FuzzHandler sends each input as one text message on one of a few
// WebSockets to one tracker. After it the same connection must still answer
// a valid announce, or, if the input was over the message limit or not
// UTF-8, have been closed by the tracker (then it is dialled again). Every
// message the tracker sends must be JSON with an "action", and its gauges
// must agree with what a scrape of every swarm counts.
func FuzzHandler(f *testing.F) {
	seed := func(m map[string]any) {
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(announce(fuzzSwarm, id("s"), map[string]any{"event": "started", "offers": offers(5, "f")}))
	seed(announce(fuzzSwarm, id("s"), map[string]any{"event": "completed", "left": 0}))
	seed(announce(fuzzSwarm, id("s"), map[string]any{"event": "stopped"}))
	seed(announce(fuzzSwarm, fuzzPeer(1), map[string]any{"event": "stopped"})) // another connection's peer
	seed(announce(id("other"), id("s"), map[string]any{"numwant": 1, "offers": offers(2, "g")}))
	seed(answerMsg(bin(fuzzSwarm), bin(fuzzPeer(0)), bin(id("s")), bin(id("fa"))))
	seed(map[string]any{"action": "scrape", "info_hash": []string{bin(fuzzSwarm), bin(id("other"))}})
	seed(map[string]any{"action": "scrape"})
	for _, s := range []string{``, `{`, `[]`, `{"action":"connect"}`, `{"action":"announce","info_hash":5}`,
		"{\"action\":\"\xff\"}", strings.Repeat(" ", fuzzLimit+1)} {
		f.Add([]byte(s))
	}
	frames, _ := filepath.Glob("wire/testdata/*.json")
	for _, name := range frames {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}

	h := newHandlerFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) { h.run(t, data) })
}

type handlerFuzz struct {
	tr    *tracker
	conns [3]*fuzzConn
	// ok is false while an input is being served: an input that failed
	// leaves the connections in an unknown state, so the next one (the
	// fuzzer minimizing it) starts from fresh ones.
	ok bool
}

// fuzzConn is one client socket. Its peers are fuzzPeer(i) in fuzzSwarm and
// a random peer in a random probe swarm that no input can name.
type fuzzConn struct {
	i      int
	ws     *websocket.Conn
	probe  wire.Hash // swarm and peer_id of the probe announce
	in     chan []byte
	done   chan struct{}
	err    error // why reading stopped; set before done is closed
	inputs int   // inputs sent on this socket
}

func newHandlerFuzz(f *testing.F) *handlerFuzz {
	h := &handlerFuzz{tr: newTracker(f, signal.Config{
		AnnounceRate:    -1,
		MaxMessageBytes: fuzzLimit,
		MaxSDPBytes:     2 << 10,
		// Nothing expires during a run: gauges change only by the inputs.
		PeerTTL: time.Hour, IdleTimeout: time.Hour,
	})}
	if err := h.reset(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		for _, c := range h.conns {
			if c != nil {
				c.close()
			}
		}
	})
	return h
}

// reset replaces every connection.
func (h *handlerFuzz) reset() error {
	for i, c := range h.conns {
		if c != nil {
			c.close()
			h.conns[i] = nil
		}
	}
	for start := time.Now(); h.tr.Stats().Connections > 0; time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			return errors.New("the tracker did not see the connections close within 5s")
		}
	}
	for i := range h.conns {
		c, err := h.dial(i)
		if err != nil {
			return err
		}
		h.conns[i] = c
	}
	h.ok = true
	return nil
}

func (h *handlerFuzz) dial(i int) (*fuzzConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, h.tr.url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &fuzzConn{i: i, ws: ws, in: make(chan []byte, 1024), done: make(chan struct{})}
	rand.Read(c.probe[:])
	go func() {
		defer close(c.done)
		defer close(c.in)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			c.in <- b
		}
	}()
	// Join fuzzSwarm and the probe swarm.
	for _, m := range []map[string]any{
		announce(fuzzSwarm, fuzzPeer(i), map[string]any{"event": "started"}),
		announce(c.probe, c.probe, map[string]any{"event": "started"}),
	} {
		b, _ := json.Marshal(m)
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
			c.close()
			return nil, err
		}
		if _, err := c.await(ctx, isAnnounceReply(m["info_hash"].(string))); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *fuzzConn) close() {
	c.ws.CloseNow()
	<-c.done
}

func isAnnounceReply(ih string) func(m map[string]any) bool {
	return func(m map[string]any) bool { return m["interval"] != nil && m["info_hash"] == ih }
}

// await reads messages until one matches; every message on the way must be
// JSON with an "action". It fails with errClosedConn when the tracker closed
// the socket.
func (c *fuzzConn) await(ctx context.Context, match func(map[string]any) bool) (map[string]any, error) {
	for {
		select {
		case b, ok := <-c.in:
			if !ok {
				return nil, fmt.Errorf("%w: %v", errClosedConn, c.err)
			}
			m, err := checkMessage(b)
			if err != nil {
				return nil, err
			}
			if match(m) {
				return m, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errClosedConn = errors.New("connection closed")

func checkMessage(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || !utf8.Valid(b) {
		return nil, fmt.Errorf("tracker sent invalid JSON %q: %v", b, err)
	}
	if a, _ := m["action"].(string); a != "announce" && a != "scrape" {
		return nil, fmt.Errorf("tracker sent %q without an action", b)
	}
	return m, nil
}

func (h *handlerFuzz) run(t *testing.T, data []byte) {
	if !h.ok {
		if err := h.reset(); err != nil {
			t.Fatal(err)
		}
	}
	h.ok = false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sum := fnv.New32a()
	sum.Write(data)
	c := h.conns[int(sum.Sum32())%len(h.conns)]

	// What the others got since (offers relayed to their peers) must be
	// well-formed too, and they must still be open.
	for _, o := range h.conns {
		if o == c {
			continue
		}
	drain:
		for {
			select {
			case b, ok := <-o.in:
				if !ok {
					t.Fatalf("connection %d closed by an input on connection %d: %v", o.i, c.i, o.err)
				}
				if _, err := checkMessage(b); err != nil {
					t.Fatal(err)
				}
			default:
				break drain
			}
		}
	}

	mayClose := len(data) > fuzzLimit || !utf8.Valid(data)
	probe, _ := json.Marshal(announce(c.probe, c.probe, nil))
	err := c.ws.Write(ctx, websocket.MessageText, data)
	if err == nil {
		err = c.ws.Write(ctx, websocket.MessageText, probe)
	}
	if err == nil {
		_, err = c.await(ctx, isAnnounceReply(bin(c.probe)))
	}
	c.inputs++
	switch {
	case err != nil && mayClose && !errors.Is(err, context.DeadlineExceeded):
		// The tracker refused the frame by closing the socket: 1009 for a
		// message over the limit, 1002 for text that is not UTF-8 (or no
		// close frame at all when we were still writing).
		c.close()
		if code := websocket.CloseStatus(c.err); code != -1 && code != websocket.StatusMessageTooBig && code != websocket.StatusProtocolError {
			t.Fatalf("input of %d bytes closed the socket with %v", len(data), c.err)
		}
		h.redial(t, c)
	case err != nil:
		t.Fatalf("after input %q the connection does not answer an announce: %v", data, err)
	case mayClose && len(data) > fuzzLimit:
		t.Fatalf("input of %d bytes over the %d-byte limit was served", len(data), fuzzLimit)
	case c.inputs >= 64:
		// Bound what inputs accumulate on one socket (peers, swarms).
		c.close()
		h.redial(t, c)
	}
	h.checkGauges(t, ctx)
	h.ok = true
}

// redial replaces a closed connection. It waits until the tracker has let
// go of the old one first, or the new one would find its peer_id in use.
//
// A dial is tried up to 3 times: on a loaded machine one may time out, and
// that does not depend on the input.
func (h *handlerFuzz) redial(t *testing.T, old *fuzzConn) {
	for start := time.Now(); gauge(t, h.tr, "signald_tracker_connections") >= float64(len(h.conns)); time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the tracker did not see a connection close within 5s")
		}
	}
	var err error
	for range 3 {
		var c *fuzzConn
		if c, err = h.dial(old.i); err == nil {
			h.conns[old.i] = c
			return
		}
	}
	t.Fatalf("dial again: %v", err)
}

// checkGauges compares the tracker's gauges with a scrape of every swarm.
// Closes are handled asynchronously, so it retries for a while.
func (h *handlerFuzz) checkGauges(t *testing.T, ctx context.Context) {
	c := h.conns[0]
	scrape := []byte(`{"action":"scrape"}`)
	var why string
	for try := 0; try < 200; try++ {
		if try > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := c.ws.Write(ctx, websocket.MessageText, scrape); err != nil {
			t.Fatalf("scrape: %v", err)
		}
		m, err := c.await(ctx, func(m map[string]any) bool { return m["action"] == "scrape" && m["files"] != nil })
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		files := m["files"].(map[string]any)
		peers := 0
		for _, f := range files {
			f := f.(map[string]any)
			peers += num(f, "complete") + num(f, "incomplete")
		}
		conns, gp, gs := gauge(t, h.tr, "signald_tracker_connections"), gauge(t, h.tr, "signald_tracker_peers"), gauge(t, h.tr, "signald_tracker_swarms")
		if int(conns) == len(h.conns) && int(gp) == peers && int(gs) == len(files) {
			return
		}
		why = fmt.Sprintf("gauges: %v connections, %v peers, %v swarms; want %d connections, and a scrape counts %d peers in %d swarms",
			conns, gp, gs, len(h.conns), peers, len(files))
	}
	t.Fatal(why)
}
