package transport_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/bugout"
	"github.com/boxsignal/boxsignal/bugout/transport"
	"github.com/boxsignal/boxsignal/internal/bugoutlab"
)

// goPeer is an in-process Go peer joined through the lab's signald.
type goPeer struct {
	*bugout.Peer
	room *transport.Room
}

func joinGo(t *testing.T, ctx context.Context, lab *bugoutlab.Lab, room string) *goPeer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := bugout.New(bugout.Config{Identifier: room, Logger: log, Heartbeat: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r, err := transport.Join(ctx, transport.JoinConfig{
		Config: transport.Config{
			Trackers:         []string{lab.TrackerURL},
			HTTPClient:       lab.HTTP,
			Net:              lab.Net(t),
			AnnounceInterval: 2 * time.Second,
			ReconnectMin:     100 * time.Millisecond,
			Logger:           log,
		},
		Peer: p,
	})
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	g := &goPeer{Peer: p, room: r}
	t.Cleanup(g.close)
	return g
}

func (g *goPeer) close() {
	g.Peer.Close()
	g.room.Close()
}

// await reads events until one matches, or fails after d.
func await(t *testing.T, p *bugout.Peer, d time.Duration, match func(bugout.Event) bool) bugout.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-p.Events():
			if !ok {
				t.Fatal("events closed")
			}
			if match(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("%v: no matching event in %v", p, d)
		}
	}
}

func TestGoPeersOverWebRTC(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	lab := bugoutlab.New(t, ctx)
	a := joinGo(t, ctx, lab, "go-go-room")
	b := joinGo(t, ctx, lab, "go-go-room")

	start := time.Now()
	await(t, a.Peer, 30*time.Second, func(e bugout.Event) bool { return e.Type == bugout.EventSeen && e.Address == b.Address() })
	await(t, b.Peer, 30*time.Second, func(e bugout.Event) bool { return e.Type == bugout.EventSeen && e.Address == a.Address() })
	t.Logf("two Go peers saw each other over WebRTC after %v", time.Since(start).Round(time.Millisecond))

	if err := a.Send(map[string]string{"hello": "room"}); err != nil {
		t.Fatal(err)
	}
	e := await(t, b.Peer, 10*time.Second, func(e bugout.Event) bool { return e.Type == bugout.EventMessage })
	if e.Address != a.Address() || e.Encrypted || string(e.Message) != `{"hello":"room"}` {
		t.Errorf("broadcast arrived as %+v", e)
	}
	if err := b.SendTo(a.Address(), map[string]string{"dm": "x"}); err != nil {
		t.Fatal(err)
	}
	e = await(t, a.Peer, 10*time.Second, func(e bugout.Event) bool { return e.Type == bugout.EventMessage })
	if e.Address != b.Address() || !e.Encrypted || string(e.Message) != `{"dm":"x"}` {
		t.Errorf("DM arrived as %+v", e)
	}
	for _, c := range []struct{ from, to *goPeer }{{a, b}, {b, a}} {
		res, err := c.from.Call(ctx, c.to.Address(), "ping", map[string]int{"n": 7})
		if err != nil {
			t.Fatalf("%v calls ping: %v", c.from.Peer, err)
		}
		var got map[string]any
		if err := json.Unmarshal(res, &got); err != nil || got["pong"] != true || got["n"] != 7.0 {
			t.Errorf("ping = %s, want n 7 and pong true", res)
		}
	}
	if n := a.room.Conns(); n != 1 {
		t.Errorf("a has %d connections to b, want 1", n)
	}
}
