package transport_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/bugout"
	"github.com/boxsignal/boxsignal/internal/bugoutlab"
)

// TestNodeInterop runs a Go peer and a real bugout@0.0.13 node peer
// (webtorrent 1.9.7, simple-peer, @roamhq/wrtc) in one room through signald
// over WebRTC, in a namespace: they see each other, exchange a broadcast, an
// encrypted DM and RPC calls both ways; it reports the message latency.
func TestNodeInterop(t *testing.T) {
	bugoutlab.NeedNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	lab := bugoutlab.New(t, ctx)
	const room = "go-node-room"
	g := joinGo(t, ctx, lab, room)
	start := time.Now()
	n := lab.StartNode(t, ctx, room)
	node := bugout.Address(n.Address)

	await(t, g.Peer, 40*time.Second, func(e bugout.Event) bool { return e.Type == bugout.EventSeen && e.Address == node })
	var seen []string
	n.Next(t, "seen", 20*time.Second, &seen)
	if len(seen) == 0 || seen[0] != string(g.Address()) {
		t.Fatalf("node saw %v, want %s", seen, g.Address())
	}
	t.Logf("Go and node peers saw each other over WebRTC after %v", time.Since(start).Round(time.Millisecond))

	t.Run("broadcast go to node", func(t *testing.T) {
		if err := g.Send(map[string]string{"hello": "from go"}); err != nil {
			t.Fatal(err)
		}
		var m []json.RawMessage
		n.Next(t, "message", 10*time.Second, &m)
		if len(m) != 2 || string(m[0]) != `"`+string(g.Address())+`"` || string(m[1]) != `{"hello":"from go"}` {
			t.Errorf("node got message %s", m)
		}
	})
	t.Run("broadcast node to go", func(t *testing.T) {
		n.Do(t, map[string]any{"send": map[string]string{"hello": "from node"}})
		e := await(t, g.Peer, 10*time.Second, func(e bugout.Event) bool { return e.Type == bugout.EventMessage })
		if e.Address != node || e.Encrypted || string(e.Message) != `{"hello":"from node"}` {
			t.Errorf("Go got %+v", e)
		}
	})
	t.Run("dm node to go", func(t *testing.T) {
		n.Do(t, map[string]any{"dm": []any{g.Address(), map[string]string{"secret": "for go"}}})
		e := await(t, g.Peer, 10*time.Second, func(e bugout.Event) bool { return e.Type == bugout.EventMessage })
		if e.Address != node || !e.Encrypted || string(e.Message) != `{"secret":"for go"}` {
			t.Errorf("Go got %+v", e)
		}
	})
	t.Run("dm go to node", func(t *testing.T) {
		if err := g.SendTo(node, map[string]string{"secret": "for node"}); err != nil {
			t.Fatal(err)
		}
		var m []json.RawMessage
		n.Next(t, "message", 10*time.Second, &m)
		if len(m) != 2 || string(m[1]) != `{"secret":"for node"}` {
			t.Errorf("node got message %s", m)
		}
	})
	t.Run("rpc go to node", func(t *testing.T) {
		res, err := g.Call(ctx, node, "ping", map[string]int{"n": 1})
		if err != nil {
			t.Fatal(err)
		}
		if string(res) != `{"n":1,"pong":true}` {
			t.Errorf("node ping = %s", res)
		}
	})
	t.Run("rpc node to go", func(t *testing.T) {
		n.Do(t, map[string]any{"rpc": []any{g.Address(), "ping", map[string]int{"q": 42}}})
		var r struct {
			Call   string
			Result map[string]any
		}
		n.Next(t, "rpc-result", 10*time.Second, &r)
		if r.Result["q"] != 42.0 || r.Result["pong"] != true {
			t.Errorf("Go ping from node = %v", r.Result)
		}
	})
	t.Run("latency", func(t *testing.T) {
		const probes = 20
		var rtts []time.Duration
		for i := range probes {
			sent := time.Now()
			if err := g.Send(map[string]int{"echo": i}); err != nil {
				t.Fatal(err)
			}
			await(t, g.Peer, 10*time.Second, func(e bugout.Event) bool {
				var m struct{ Echoed *int }
				return e.Type == bugout.EventMessage && json.Unmarshal(e.Message, &m) == nil && m.Echoed != nil && *m.Echoed == i
			})
			rtts = append(rtts, time.Since(sent))
		}
		slices.Sort(rtts)
		t.Logf("Go→node→Go broadcast round trip over WebRTC: median %v, max %v (%d probes)",
			rtts[probes/2].Round(10*time.Microsecond), rtts[probes-1].Round(10*time.Microsecond), probes)
	})
}
