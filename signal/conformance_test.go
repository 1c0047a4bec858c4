package signal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
)

// The tests below follow the conformance checklist of
// shared/specs/tracker-protocol.md §6, one subtest per item, plus the
// points of §7 where Box Signal does better than the references.

func swarmOf(t *testing.T, tr *tracker, ih wire.Hash, n int, label string) []*client {
	t.Helper()
	var cs []*client
	for i := range n {
		c := dial(t, tr.url)
		c.send(announce(ih, id(fmt.Sprintf("%s%d", label, i)), map[string]any{"event": "started"}))
		if r := c.recv(); num(r, "interval") != 120 {
			t.Fatalf("announce reply %v", r)
		}
		cs = append(cs, c)
	}
	return cs
}

func TestConformance01StartedGetsCounts(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	c := dial(t, tr.url)
	ih := id("r01")
	c.send(announce(ih, id("p"), map[string]any{"event": "started", "offers": []any{}}))
	r := c.recv()
	if str(r, "action") != "announce" || num(r, "interval") != 120 || str(r, "info_hash") != bin(ih) {
		t.Fatalf("reply %v", r)
	}
	if _, ok := r["complete"]; !ok || num(r, "incomplete") != 1 {
		t.Fatalf("reply counts %v, want complete 0 incomplete 1", r)
	}
}

func TestConformance02WrongLengthHashes(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	c := dial(t, tr.url)
	for _, tc := range []struct {
		name   string
		msg    map[string]any
		reason string
	}{
		{"short info_hash", map[string]any{"action": "announce", "info_hash": "abc", "peer_id": bin(id("p"))}, "invalid info_hash"},
		{"long peer_id", map[string]any{"action": "announce", "info_hash": bin(id("r")), "peer_id": strings.Repeat("x", 21)}, "invalid peer_id"},
		{"rune over 0xFF", map[string]any{"action": "announce", "info_hash": "ĀAAAAAAAAAAAAAAAAAAA", "peer_id": bin(id("p"))}, "invalid info_hash"},
		{"number info_hash", map[string]any{"action": "announce", "info_hash": 5, "peer_id": bin(id("p"))}, "invalid info_hash"},
		{"answer without to_peer_id", map[string]any{"action": "announce", "info_hash": bin(id("r")), "peer_id": bin(id("p")),
			"answer": map[string]any{"type": "answer", "sdp": "x"}, "offer_id": bin(id("o"))}, "invalid `to_peer_id` (required with `answer`)"},
	} {
		c.send(tc.msg)
		r := c.recv()
		if str(r, "failure reason") != tc.reason || str(r, "action") != "announce" {
			t.Errorf("%s: reply %v, want failure %q with action", tc.name, r, tc.reason)
		}
	}
	// The socket stays usable.
	c.send(announce(id("r"), id("p"), nil))
	if r := c.recv(); num(r, "interval") != 120 {
		t.Fatalf("announce after failures: %v", r)
	}
}

func TestConformance03BadJSONAndUnknownAction(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	c := dial(t, tr.url)
	for _, tc := range []struct {
		msg, reason string
	}{
		{`{"action":"announce",`, "invalid JSON"},
		{`[1,2,3]`, "invalid request: not a JSON object"},
		{`{"action":"connect"}`, "invalid action in WS request: connect"},
		{`{"info_hash":"x"}`, "invalid action in WS request: undefined"},
		{`{"action":"announce"} {}`, "invalid JSON"},
	} {
		c.sendRaw([]byte(tc.msg))
		r := c.recv()
		if str(r, "failure reason") != tc.reason || str(r, "action") == "" {
			t.Errorf("send %q: reply %v, want failure %q with action", tc.msg, r, tc.reason)
		}
	}
	// An empty frame gets no reply (the event loop does not deliver it),
	// a binary frame is parsed like a text one, as bittorrent-tracker does.
	c.sendRaw(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, []byte(`{"action":"scrape"}`)); err != nil {
		t.Fatal(err)
	}
	if r := c.recv(); str(r, "action") != "scrape" {
		t.Fatalf("binary frame: %v", r)
	}
	c.send(announce(id("r"), id("p"), nil))
	if r := c.recv(); num(r, "interval") != 120 {
		t.Fatalf("server unusable after bad input: %v", r)
	}
	// Text that is not UTF-8 is a WebSocket protocol error: a clean close.
	bad := dial(t, tr.url)
	if err := bad.ws.Write(ctx, websocket.MessageText, []byte("{\"action\":\"\xff\"}")); err != nil {
		t.Fatal(err)
	}
	if _, open := <-bad.in; open {
		t.Fatal("invalid UTF-8 text answered, want a close")
	}
}

// offerTo reads one relayed offer from c and returns it.
func offerFrom(t *testing.T, c *client) map[string]any {
	t.Helper()
	m := c.recv()
	if m["offer"] == nil {
		t.Fatalf("want an offer, got %v", m)
	}
	return m
}

func TestConformance04FanOutToDistinctPeers(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("r04")
	peers := swarmOf(t, tr, ih, 9, "p")
	sender := dial(t, tr.url)
	sender.send(announce(ih, id("sender"), map[string]any{"event": "started", "offers": offers(5, "x")}))
	if r := sender.recv(); num(r, "incomplete") != 10 {
		t.Fatalf("sender reply %v", r)
	}
	got := map[string]int{}
	receivers := 0
	for _, p := range peers {
		select {
		case m := <-p.in:
			receivers++
			if str(m, "peer_id") != bin(id("sender")) || str(m, "info_hash") != bin(ih) {
				t.Errorf("offer %v: wrong peer_id or info_hash", m)
			}
			got[str(m, "offer_id")]++
			sdp := m["offer"].(map[string]any)["sdp"].(string)
			if !strings.HasPrefix(sdp, "v=0\r\no=- x") {
				t.Errorf("offer sdp %q not relayed unchanged", sdp)
			}
		case <-time.After(300 * time.Millisecond):
		}
	}
	if receivers != 5 || len(got) != 5 {
		t.Fatalf("%d peers got offers %v, want 5 distinct peers each with a distinct offer", receivers, got)
	}
	sender.quiet(100 * time.Millisecond) // nothing back to the sender
}

func TestConformance05FewerPeersThanOffers(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("r05")
	peers := swarmOf(t, tr, ih, 2, "p")
	sender := dial(t, tr.url)
	sender.send(announce(ih, id("s"), map[string]any{"offers": offers(5, "y")}))
	sender.recv()
	for _, p := range peers {
		offerFrom(t, p)
		p.quiet(100 * time.Millisecond)
	}
	sender.quiet(50 * time.Millisecond)
}

func answerMsg(ih, from, to, offerID string) map[string]any {
	return map[string]any{"action": "announce", "info_hash": ih, "peer_id": from, "to_peer_id": to,
		"answer": map[string]any{"type": "answer", "sdp": "v=0\r\nanswer"}, "offer_id": offerID}
}

func TestConformance06AnswerRoutedToOfferer(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("r06")
	b := swarmOf(t, tr, ih, 1, "b")[0]
	a := dial(t, tr.url)
	a.send(announce(ih, id("a"), map[string]any{"offers": offers(1, "o")}))
	a.recv()
	o := offerFrom(t, b)
	b.send(answerMsg(bin(ih), bin(id("b0")), str(o, "peer_id"), str(o, "offer_id")))
	r := a.recv()
	if r["answer"] == nil || str(r, "offer_id") != str(o, "offer_id") || str(r, "peer_id") != bin(id("b0")) || str(r, "info_hash") != bin(ih) {
		t.Fatalf("answer at offerer %v", r)
	}
	if sdp := r["answer"].(map[string]any)["sdp"]; sdp != "v=0\r\nanswer" {
		t.Fatalf("answer sdp %q", sdp)
	}
	b.quiet(100 * time.Millisecond) // no announce reply for an answer
}

func TestConformance07UnrelayedAnswerDropped(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("r07")
	cs := swarmOf(t, tr, ih, 3, "q")
	a, b, x := cs[0], cs[1], cs[2]
	a.send(announce(ih, id("q0"), map[string]any{"offers": offers(1, "o"), "numwant": 1}))
	a.recv()
	// Whoever got the offer, the others inject answers; a never hears them.
	var got, other *client
	var o map[string]any
	select {
	case o = <-b.in:
		got, other = b, x
	case o = <-x.in:
		got, other = x, b
	case <-time.After(2 * time.Second):
		t.Fatal("offer not relayed")
	}
	otherID := bin(id("q1"))
	if other == x {
		otherID = bin(id("q2"))
	}
	gotID := bin(id("q1"))
	if got == x {
		gotID = bin(id("q2"))
	}
	other.send(answerMsg(bin(ih), otherID, bin(id("q0")), str(o, "offer_id"))) // never received the offer
	got.send(answerMsg(bin(ih), gotID, bin(id("q0")), bin(id("forged"))))      // an offer_id never sent
	got.send(answerMsg(bin(ih), gotID, bin(id("q0")), str(o, "offer_id")))     // the real one
	r := a.recv()
	if str(r, "peer_id") != gotID {
		t.Fatalf("first message at offerer %v, want the real answer", r)
	}
	got.send(answerMsg(bin(ih), gotID, bin(id("q0")), str(o, "offer_id"))) // replay: delivered once
	a.quiet(200 * time.Millisecond)
	if n := counter(t, tr, "signald_tracker_relay_dropped_total", "reason", "unexpected_answer"); n != 3 {
		t.Errorf("unexpected answers counted %v, want 3", n)
	}
}

func TestConformance08StoppedAndCloseRemovePeers(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih, ih2 := id("r08"), id("r08b")
	a := dial(t, tr.url)
	a.send(announce(ih, id("a"), map[string]any{"event": "started"}))
	a.recv()
	a.send(announce(ih2, id("a"), map[string]any{"event": "started"}))
	a.recv()
	b := dial(t, tr.url)
	b.send(announce(ih, id("b"), map[string]any{"event": "started"}))
	if r := b.recv(); num(r, "incomplete") != 2 {
		t.Fatalf("two peers: %v", r)
	}
	b.send(announce(ih, id("b"), map[string]any{"event": "stopped"}))
	if r := b.recv(); num(r, "incomplete") != 1 {
		t.Fatalf("after stopped: %v", r)
	}
	a.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, func() bool { return scrapeCounts(t, b, ih)[1] == 0 && scrapeCounts(t, b, ih2)[1] == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 2s")
}

// scrapeCounts returns complete, incomplete, downloaded of one swarm.
func scrapeCounts(t *testing.T, c *client, ih wire.Hash) [3]int {
	t.Helper()
	c.send(map[string]any{"action": "scrape", "info_hash": bin(ih)})
	r := c.recv()
	f, ok := r["files"].(map[string]any)[bin(ih)].(map[string]any)
	if !ok {
		t.Fatalf("scrape reply %v", r)
	}
	return [3]int{num(f, "complete"), num(f, "incomplete"), num(f, "downloaded")}
}

func TestConformance09SwarmsDoNotLeak(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	rooms := []wire.Hash{id("r9a"), id("r9b"), id("r9c")}
	multi := dial(t, tr.url)
	for _, ih := range rooms {
		multi.send(announce(ih, id("m"), map[string]any{"event": "started"}))
		multi.recv()
	}
	other := dial(t, tr.url)
	other.send(announce(id("r9d"), id("o"), map[string]any{"event": "started"}))
	other.recv()
	sender := dial(t, tr.url)
	sender.send(announce(rooms[1], id("s"), map[string]any{"offers": offers(3, "z")}))
	sender.recv()
	m := offerFrom(t, multi)
	if str(m, "info_hash") != bin(rooms[1]) {
		t.Fatalf("offer for %q arrived tagged %q", bin(rooms[1]), str(m, "info_hash"))
	}
	multi.quiet(100 * time.Millisecond)
	other.quiet(10 * time.Millisecond)
}

func TestConformance10SeedersAndCompleted(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("r10")
	a := dial(t, tr.url)
	a.send(announce(ih, id("a"), map[string]any{"event": "started", "left": 0}))
	if r := a.recv(); num(r, "complete") != 1 || num(r, "incomplete") != 0 {
		t.Fatalf("left 0 on start: %v", r)
	}
	b := dial(t, tr.url)
	b.send(announce(ih, id("b"), map[string]any{"event": "started", "left": 10}))
	if r := b.recv(); num(r, "complete") != 1 || num(r, "incomplete") != 1 {
		t.Fatalf("a leecher joins: %v", r)
	}
	b.send(announce(ih, id("b"), map[string]any{"event": "completed", "left": 0}))
	if r := b.recv(); num(r, "complete") != 2 || num(r, "incomplete") != 0 {
		t.Fatalf("after completed: %v", r)
	}
	if got := scrapeCounts(t, a, ih); got != [3]int{2, 0, 1} {
		t.Fatalf("scrape %v, want complete 2, incomplete 0, downloaded 1", got)
	}
}

func TestConformance11Scrape(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	a, b, unknown := id("r11a"), id("r11b"), id("r11-unknown")
	swarmOf(t, tr, a, 2, "a")
	swarmOf(t, tr, b, 1, "b")
	c := dial(t, tr.url)
	c.send(map[string]any{"action": "scrape", "info_hash": []string{bin(a), bin(b), bin(unknown)}})
	r := c.recv()
	files := r["files"].(map[string]any)
	want := map[string]int{bin(a): 2, bin(b): 1, bin(unknown): 0}
	for h, n := range want {
		f, ok := files[h].(map[string]any)
		if !ok || num(f, "incomplete") != n || num(f, "complete") != 0 {
			t.Errorf("scrape file %q = %v, want incomplete %d", h, files[h], n)
		}
	}
	if str(r, "action") != "scrape" || r["flags"].(map[string]any)["min_request_interval"] == nil {
		t.Errorf("scrape reply %v", r)
	}
	if got := scrapeCounts(t, c, unknown); got != [3]int{} {
		t.Errorf("unknown swarm %v", got)
	}
}

func TestConformance12OversizedMessage(t *testing.T) {
	tr := newTracker(t, signal.Config{MaxMessageBytes: 8 << 10, MaxSDPBytes: 4 << 10})
	big := dial(t, tr.url)
	ok := dial(t, tr.url)
	msg, _ := json.Marshal(announce(id("r12"), id("big"), map[string]any{"pad": strings.Repeat("x", 9<<10)}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	big.ws.Write(ctx, websocket.MessageText, msg) // may fail: the tracker closes mid-frame
	select {
	case m, open := <-big.in:
		if open {
			t.Fatalf("oversized message answered %v, want the socket closed", m)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("socket with an oversized message not closed")
	}
	ok.send(announce(id("r12"), id("ok"), nil))
	if r := ok.recv(); num(r, "incomplete") != 1 {
		t.Fatalf("other socket: %v", r)
	}
	// An SDP over its own limit inside a message that fits gets a failure.
	ok.send(announce(id("r12"), id("ok"), map[string]any{"offers": []any{map[string]any{
		"offer": map[string]any{"sdp": strings.Repeat("s", 5<<10)}, "offer_id": bin(id("o"))}}}))
	if r := ok.recv(); str(r, "failure reason") != "offer or answer too large" {
		t.Fatalf("oversized SDP: %v", r)
	}
}

func TestConformance13ScrapeAll(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	swarmOf(t, tr, id("r13a"), 1, "a")
	swarmOf(t, tr, id("r13b"), 2, "b")
	c := dial(t, tr.url)
	c.send(map[string]any{"action": "scrape"})
	files := c.recv()["files"].(map[string]any)
	if len(files) != 2 {
		t.Fatalf("scrape of all swarms: %v", files)
	}
}

// slowDial opens a WebSocket with a tiny receive buffer and never reads.
func slowDial(t *testing.T, url string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	host := strings.TrimPrefix(url, "ws://")
	nc, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	resp, err := http.ReadResponse(bufioReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return nc
}

func TestConformance14SlowReaderBounded(t *testing.T) {
	tr := newTracker(t, signal.Config{AnnounceRate: -1, WriteBufferBytes: 64 << 10})
	ih := id("r14")
	fast := swarmOf(t, tr, ih, 1, "f")[0]
	slow := slowDial(t, tr.url)
	frame := maskedText(t, announce(ih, id("slow"), map[string]any{"event": "started"}))
	if _, err := slow.Write(frame); err != nil {
		t.Fatal(err)
	}
	sender := dial(t, tr.url)
	sdp := strings.Repeat("a", 12<<10)
	const rounds = 600 // 600 × 12 KiB ≈ 7 MiB for the slow reader: past every buffer
	for i := range rounds {
		o := []any{
			map[string]any{"offer": map[string]any{"sdp": sdp}, "offer_id": bin(id(fmt.Sprint("a", i)))},
			map[string]any{"offer": map[string]any{"sdp": sdp}, "offer_id": bin(id(fmt.Sprint("b", i)))},
		}
		sender.send(announce(ih, id("s"), map[string]any{"offers": o}))
		sender.recv()
		if m := offerFrom(t, fast); str(m, "peer_id") != bin(id("s")) {
			t.Fatalf("fast peer got %v", m)
		}
	}
	// The slow reader was cut off once its queue passed the bound.
	waitFor(t, func() bool { return gauge(t, tr, "signald_tracker_connections") == 2 })
}

func TestConformance15IdleExpiry(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("r15")
	a := swarmOf(t, tr, ih, 1, "a")[0]
	b := dial(t, tr.url)
	tr.ExpireAt(time.Now().Add(100 * time.Second)) // not yet
	if got := scrapeCounts(t, b, ih); got[1] != 1 {
		t.Fatalf("peer expired too early: %v", got)
	}
	tr.ExpireAt(time.Now().Add(181 * time.Second))
	// Both sockets sent no announce for longer than the idle timeout.
	for _, c := range []*client{a, b} {
		select {
		case m, open := <-c.in:
			if open {
				t.Fatalf("idle socket got %v, want it closed", m)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("idle socket not closed")
		}
	}
	if got := scrapeCounts(t, dial(t, tr.url), ih); got[1] != 0 {
		t.Fatalf("peer not expired: %v", got)
	}
	if gauge(t, tr, "signald_tracker_swarms") != 0 || gauge(t, tr, "signald_tracker_peers") != 0 {
		t.Fatal("swarm or peer gauges not back to 0")
	}
}

func counter(t *testing.T, tr *tracker, name, label, value string) float64 {
	t.Helper()
	for _, m := range gather(t, tr, name) {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func gauge(t *testing.T, tr *tracker, name string) float64 {
	t.Helper()
	ms := gather(t, tr, name)
	if len(ms) != 1 {
		t.Fatalf("metric %s: %d series", name, len(ms))
	}
	return ms[0].GetGauge().GetValue()
}

func gather(t *testing.T, tr *tracker, name string) []*dto.Metric {
	t.Helper()
	fams, err := tr.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}
