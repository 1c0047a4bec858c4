package signal_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type tracker struct {
	*signal.Server
	url string
	reg *prometheus.Registry
}

// newTracker starts a tracker on 127.0.0.1 with cfg (a zero Config is the
// defaults) and stops it when the test, benchmark or fuzz target ends.
func newTracker(t testing.TB, cfg signal.Config) *tracker {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := signal.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return &tracker{Server: s, url: "ws" + strings.TrimPrefix(ts.URL, "http"), reg: reg}
}

// client is a test peer speaking the tracker protocol over a real WebSocket.
type client struct {
	t  *testing.T
	ws *websocket.Conn
	in chan map[string]any
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{t: t, ws: ws, in: make(chan map[string]any, 1000)}
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
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("tracker sent invalid JSON %q: %v", b, err)
				return
			}
			c.in <- m
		}
	}()
	t.Cleanup(func() { ws.CloseNow(); <-done })
	return c
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(m map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

// recv returns the next message, failing the test after a timeout.
func (c *client) recv() map[string]any {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			c.t.Fatal("connection closed while waiting for a message")
		}
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatal("no message from the tracker within 5s")
	}
	return nil
}

// quiet asserts that nothing arrives for a short while.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if ok {
			c.t.Fatalf("unexpected message %v", m)
		}
	case <-time.After(d):
	}
}

// bin is a 20-byte value as the JSON string browsers send.
func bin(h wire.Hash) string {
	r := make([]rune, len(h))
	for i, b := range h {
		r[i] = rune(b)
	}
	return string(r)
}

// id makes a distinct 20-byte value from a label, with bytes over 0x7F and
// control characters in it so encoding is exercised.
func id(label string) wire.Hash {
	var h wire.Hash
	for i := range h {
		h[i] = byte(i*37 + 0x80)
	}
	h[0] = 0x00
	h[1] = '"'
	copy(h[2:], label)
	return h
}

func announce(ih, peer wire.Hash, extra map[string]any) map[string]any {
	m := map[string]any{"action": "announce", "info_hash": bin(ih), "peer_id": bin(peer),
		"numwant": 5, "uploaded": 0, "downloaded": 0, "left": 16}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func offers(n int, label string) []map[string]any {
	var o []map[string]any
	for i := range n {
		o = append(o, map[string]any{
			"offer":    map[string]any{"type": "offer", "sdp": "v=0\r\no=- " + label + string(rune('a'+i)) + "\r\n"},
			"offer_id": bin(id(label + string(rune('a'+i)))),
		})
	}
	return o
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func num(m map[string]any, k string) int { f, _ := m[k].(float64); return int(f) }
