package dht

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/coder/websocket"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent(),
		// Process-wide workers started by libp2p and quic-go packages on
		// first use, not per host.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	)
}

// box is one Box in a test: a tracker on 127.0.0.1 and its federation node.
type box struct {
	t    testing.TB
	name string
	tr   *signal.Server
	url  string
	node *Node
	reg  *prometheus.Registry
	stop func()
}

type boxOpt func(*Config)

func quiet(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newBox starts a Box with its own libp2p host on 127.0.0.1 (TCP), or on
// h when given (mocknet).
func newBox(t testing.TB, name string, h host.Host, opts ...boxOpt) *box {
	t.Helper()
	reg := prometheus.NewRegistry()
	tr, err := signal.NewServer(signal.Config{Logger: quiet(t), Registerer: reg, AnnounceRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(tr)
	cfg := Config{
		Host:        h,
		Listen:      []string{"/ip4/127.0.0.1/tcp/0"},
		Tick:        100 * time.Millisecond,
		DialTimeout: time.Second,
		Logger:      quiet(t),
		Registerer:  reg,
	}
	if h == nil {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Key = k
	}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := New(cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	tr.SetFederation(n)
	b := &box{t: t, name: name, tr: tr, url: "ws" + strings.TrimPrefix(ts.URL, "http"), node: n, reg: reg}
	stopped := false
	b.stop = func() {
		if stopped {
			return
		}
		stopped = true
		tr.SetFederation(nil)
		n.Close()
		ts.Close()
		tr.Close()
	}
	t.Cleanup(b.stop)
	return b
}

func (b *box) friend() Friend {
	return Friend{ID: b.node.ID(), Name: b.name, Addrs: b.node.Host().Addrs()}
}

// befriend makes a and b list each other.
func befriend(a, b *box) {
	a.node.SetFriends(append(friendsOf(a), b.friend()))
	b.node.SetFriends(append(friendsOf(b), a.friend()))
}

func friendsOf(b *box) []Friend {
	var out []Friend
	for _, f := range *b.node.friends.Load() {
		out = append(out, *f)
	}
	return out
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// knows reports whether b has heard from the Box with ID p that it has
// peers in room ih.
func (b *box) knows(p peer.ID, ih wire.Hash) bool {
	b.node.mu.Lock()
	defer b.node.mu.Unlock()
	in := b.node.remote[KeyOf(&ih)][p]
	return in != nil && in.peers > 0
}

func (b *box) counter(name string, labels ...string) float64 {
	mfs, err := b.reg.Gather()
	if err != nil {
		b.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// browser is a test peer speaking the WebTorrent tracker protocol over a
// real WebSocket, as a browser does, minus WebRTC.
type browser struct {
	t  testing.TB
	ws *websocket.Conn
	in chan map[string]any
}

func dial(t testing.TB, url string) *browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &browser{t: t, ws: ws, in: make(chan map[string]any, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.in)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				c.in <- m
			}
		}
	}()
	t.Cleanup(func() { ws.CloseNow(); <-done })
	return c
}

func (c *browser) send(m map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next message that has key, skipping announce replies.
func (c *browser) next(key string, d time.Duration) map[string]any {
	c.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection closed waiting for %q", key)
			}
			if m[key] != nil {
				return m
			}
		case <-timeout:
			c.t.Fatalf("no message with %q within %v", key, d)
		}
	}
}

// none asserts that no message with key arrives for d.
func (c *browser) none(key string, d time.Duration) {
	c.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-c.in:
			if ok && m[key] != nil {
				c.t.Fatalf("unexpected %q message: %v", key, m)
			}
		case <-timeout:
			return
		}
	}
}

func bin(h wire.Hash) string {
	r := make([]rune, len(h))
	for i, b := range h {
		r[i] = rune(b)
	}
	return string(r)
}

func hashOf(label string) wire.Hash {
	var h wire.Hash
	copy(h[:], label)
	for i := len(label); i < len(h); i++ {
		h[i] = byte(0x80 + i)
	}
	return h
}

func (c *browser) announce(ih, id wire.Hash, nOffers int, label string) {
	c.t.Helper()
	var offers []map[string]any
	for i := range nOffers {
		offers = append(offers, map[string]any{
			"offer":    map[string]any{"type": "offer", "sdp": "v=0\r\no=- " + label + "\r\n"},
			"offer_id": bin(hashOf(label + string(rune('a'+i)))),
		})
	}
	c.send(map[string]any{"action": "announce", "info_hash": bin(ih), "peer_id": bin(id),
		"numwant": 50, "uploaded": 0, "downloaded": 0, "left": 1, "event": "started", "offers": offers})
}

func (c *browser) answer(ih, from wire.Hash, offer map[string]any) {
	c.t.Helper()
	c.send(map[string]any{"action": "announce", "info_hash": bin(ih), "peer_id": bin(from),
		"to_peer_id": offer["peer_id"], "offer_id": offer["offer_id"],
		"answer": map[string]any{"type": "answer", "sdp": "v=0\r\nanswer"}})
}
