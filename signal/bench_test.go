package signal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/coder/websocket"
	"github.com/go-json-experiment/json/jsontext"
)

// relaySDP is a non-trickle Chrome data-channel offer of about 700 bytes,
// as in signal/wire/testdata.
var relaySDP = func() json.RawMessage {
	lines := []string{"v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
		"a=extmap-allow-mixed", "a=msid-semantic: WMS", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
		"a=candidate:1467250027 1 udp 2122260223 192.168.1.10 50000 typ host generation 0 network-id 1",
		"a=candidate:842163049 1 udp 1686052607 203.0.113.7 50000 typ srflx raddr 192.168.1.10 rport 50000 generation 0 network-id 1",
		"a=ice-ufrag:Xk0q", "a=ice-pwd:p0Wf0vBJbRw2o2qYt7zFZx8u/", "a=ice-options:trickle",
		"a=fingerprint:sha-256 3C:4A:AA:E1:96:21:7E:30:B8:E5:1E:0D:33:39:82:4B:77:F3:C4:52:07:1C:69:6C:0E:9D:07:B2:5D:1C:0F:84",
		"a=setup:actpass", "a=mid:0", "a=sctp-port:5000", "a=max-message-size:262144", ""}
	b, _ := json.Marshal(map[string]string{"type": "offer", "sdp": strings.Join(lines, "\r\n")})
	return b
}()

var relayAnswerSDP = json.RawMessage(strings.Replace(string(relaySDP), `"offer"`, `"answer"`, 1))

// browser is a benchmark peer: like a webtorrent page, it reads its socket
// all the time, answers every offer it is relayed and collects the answers
// to its own offers.
type browser struct {
	ws      *websocket.Conn
	id      wire.Hash
	answers chan struct{} // one per answer relayed to this browser
	done    chan struct{}
	errs    atomic.Int64 // messages it could not read or answer
	out     []byte       // the sender's announce
}

func dialBrowser(tb testing.TB, url string, ih, peerID wire.Hash) *browser {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(1 << 20)
	b := &browser{ws: ws, id: peerID, answers: make(chan struct{}, 1024), done: make(chan struct{})}
	msg, _ := json.Marshal(announce(ih, peerID, map[string]any{"event": "started", "numwant": 0}))
	if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
		tb.Fatal(err)
	}
	if _, reply, err := ws.Read(ctx); err != nil || !strings.Contains(string(reply), `"interval"`) {
		tb.Fatalf("announce reply %q, %v", reply, err)
	}
	go b.run()
	tb.Cleanup(func() { ws.CloseNow(); <-b.done })
	return b
}

func (b *browser) run() {
	defer close(b.done)
	ctx := context.Background()
	myID, _ := json.Marshal(bin(b.id))
	// Read with jsontext, raw values only, and write answers from bytes:
	// the clients' CPU is counted with the tracker's, so keep it small.
	var (
		buf bytes.Buffer
		dec jsontext.Decoder
		out []byte
	)
	for {
		_, msg, err := b.ws.Read(ctx)
		if err != nil {
			return
		}
		var infoHash, peerID, offerID, offer, answer jsontext.Value
		buf.Reset()
		buf.Write(msg)
		dec.Reset(&buf)
		if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
			b.errs.Add(1)
			continue
		}
		for dec.PeekKind() == '"' {
			k, err1 := dec.ReadValue()
			key := string(k) // does not allocate in a switch
			v, err2 := dec.ReadValue()
			if err1 != nil || err2 != nil {
				b.errs.Add(1)
				break
			}
			switch key {
			case `"info_hash"`:
				infoHash = v
			case `"peer_id"`:
				peerID = v
			case `"offer_id"`:
				offerID = v
			case `"offer"`:
				offer = v
			case `"answer"`:
				answer = v
			}
		}
		switch {
		case answer != nil:
			b.answers <- struct{}{}
		case offer != nil:
			// websocket-tracker.js answers with the offer's ids verbatim.
			out = append(out[:0], `{"action":"announce","info_hash":`...)
			out = append(out, infoHash...)
			out = append(out, `,"peer_id":`...)
			out = append(out, myID...)
			out = append(out, `,"to_peer_id":`...)
			out = append(out, peerID...)
			out = append(out, `,"answer":`...)
			out = append(out, relayAnswerSDP...)
			out = append(out, `,"offer_id":`...)
			out = append(out, offerID...)
			out = append(out, '}')
			if err := b.ws.Write(ctx, websocket.MessageText, out); err != nil {
				b.errs.Add(1)
			}
		}
	}
}

// appendOfferRound appends an announce of n offers in webtorrent's shape,
// with offer_ids fresh for round r (printable, so they need no escaping).
func appendOfferRound(dst []byte, ihJSON, peerJSON []byte, n int, r uint64) []byte {
	dst = append(dst, `{"numwant":`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, `,"uploaded":0,"downloaded":0,"left":16,"action":"announce","info_hash":`...)
	dst = append(dst, ihJSON...)
	dst = append(dst, `,"peer_id":`...)
	dst = append(dst, peerJSON...)
	dst = append(dst, `,"offers":[`...)
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"offer":`...)
		dst = append(dst, relaySDP...)
		dst = append(dst, `,"offer_id":"offer-`...)
		dst = append(dst, byte('a'+i))
		dst = fmt.Appendf(dst, "%013x\"}", r)
	}
	return append(dst, "]}"...)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAnnounceRelay measures the offer relay end to end on loopback: a
// swarm of 50 browsers, and senders that each announce 5 offers per op and
// wait until the 5 answers are back. One op is 1 announce + 1 reply + 5
// offers + 5 answers through the tracker: 6 WebSocket messages in, 11 out.
//
// The clients run in this process and share the CPU with the tracker: for
// every message the tracker reads or writes, a client does the opposite
// (framing, masking, a syscall) and scans the JSON it reads. So ns/op,
// cpu-ns/op (user+system CPU of the whole process per op), B/op and
// allocs/op are the sum of both sides, and offers/s is a lower bound for
// the tracker alone. A CPU profile (-cpuprofile, senders=4/cpu, 2 CPUs)
// puts about half of the process's CPU in the clients (browser.run and the
// senders: coder/websocket, syscalls), about 40% in the tracker
// (conn.handle and its event loop) and the rest in the runtime; most of each
// side is write and read syscalls. TestRelayAllocs counts the tracker's
// allocations alone.
// "senders=1" is latency-bound (one announce in flight at a time);
// "senders=4/cpu" runs 4 senders per GOMAXPROCS at once to load the tracker.
func BenchmarkAnnounceRelay(b *testing.B) {
	b.Run("senders=1", func(b *testing.B) { benchmarkRelay(b, 50, 1) })
	b.Run("senders=4/cpu", func(b *testing.B) { benchmarkRelay(b, 50, 4) })
}

const offersPerOp = 5

// benchmarkRelay runs the benchmark with one sender, or with parallelism
// senders per GOMAXPROCS.
func benchmarkRelay(b *testing.B, peers, parallelism int) {
	tr := newTracker(b, signal.Config{AnnounceRate: -1, MaxConnsPerIP: -1})
	ih := id("bench")
	var all []*browser
	for i := range peers {
		all = append(all, dialBrowser(b, tr.url, ih, id(fmt.Sprint("peer", i))))
	}
	senders := 1
	if parallelism > 1 {
		senders = parallelism * runtime.GOMAXPROCS(0)
	}
	pool := make(chan *browser, senders)
	for i := range senders {
		s := dialBrowser(b, tr.url, ih, id(fmt.Sprint("sender", i)))
		all = append(all, s)
		pool <- s
	}
	var rounds atomic.Uint64
	ihJSON, _ := json.Marshal(bin(ih))
	// relay announces 5 offers from s and waits for their answers.
	relay := func(s *browser) bool {
		peerJSON, _ := json.Marshal(bin(s.id))
		s.out = appendOfferRound(s.out[:0], ihJSON, peerJSON, offersPerOp, rounds.Add(1))
		if err := s.ws.Write(context.Background(), websocket.MessageText, s.out); err != nil {
			b.Error(err)
			return false
		}
		for range offersPerOp {
			select {
			case <-s.answers:
			case <-time.After(10 * time.Second):
				b.Errorf("answers not back within 10s: %s", snapshot(tr))
				return false
			}
		}
		return true
	}
	b.ReportAllocs()
	cpu := cpuTime()
	if parallelism <= 1 {
		s := <-pool
		for b.Loop() {
			if !relay(s) {
				return
			}
		}
	} else {
		b.SetParallelism(parallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			s := <-pool
			for pb.Next() {
				if !relay(s) {
					return
				}
			}
		})
		b.StopTimer()
	}
	n := float64(rounds.Load())
	b.ReportMetric(n*offersPerOp/b.Elapsed().Seconds(), "offers/s")
	b.ReportMetric(float64(cpuTime()-cpu)/n, "cpu-ns/op")
	for _, c := range all {
		if n := c.errs.Load(); n > 0 {
			b.Errorf("browser %v: %d messages unreadable or unanswered", c.id, n)
		}
	}
}

// snapshot is the tracker's relay counters, for a failure message.
func snapshot(tr *tracker) string {
	var sb strings.Builder
	fams, _ := tr.reg.Gather()
	for _, f := range fams {
		if strings.Contains(f.GetName(), "relay") || strings.Contains(f.GetName(), "failures") {
			for _, m := range f.GetMetric() {
				fmt.Fprintf(&sb, "%s%v=%v ", f.GetName(), m.GetLabel(), m.GetCounter().GetValue())
			}
		}
	}
	return sb.String()
}

// raceEnabled reports a -race build, where sync.Pool drops items on purpose
// and allocation counts mean nothing.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// rawPeer is a WebSocket client on a bare TCP socket that only counts the
// bytes it receives: it allocates nothing per message, so that
// testing.AllocsPerRun sees only the tracker's allocations.
type rawPeer struct {
	nc     net.Conn
	got    atomic.Int64
	notify chan struct{} // a token after each read
	done   chan struct{}
}

func dialRaw(t *testing.T, url string, notify chan struct{}) *rawPeer {
	t.Helper()
	p := &rawPeer{nc: slowDial(t, url), notify: notify, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := p.nc.Read(buf)
			p.got.Add(int64(n))
			select {
			case p.notify <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { p.nc.Close(); <-p.done })
	return p
}

func (p *rawPeer) send(t *testing.T, frame []byte) {
	if _, err := p.nc.Write(frame); err != nil {
		t.Fatal(err)
	}
}

// frameSize is the size of an unmasked server frame carrying n bytes.
func frameSize(n int) int64 {
	switch {
	case n < 126:
		return int64(n) + 2
	case n < 1<<16:
		return int64(n) + 4
	}
	return int64(n) + 10
}

// waitBytes blocks until the peers have received want bytes between them.
// It allocates nothing, and blocking (rather than spinning) lets the
// runtime poll the network at once under AllocsPerRun's GOMAXPROCS 1.
func waitBytes(t *testing.T, ctx context.Context, notify chan struct{}, want int64, peers ...*rawPeer) {
	for {
		var got int64
		for _, p := range peers {
			got += p.got.Load()
		}
		switch {
		case got == want:
			return
		case got > want:
			t.Fatalf("received %d bytes, want %d: frames differ from what the test expects", got, want)
		}
		select {
		case <-notify:
		case <-ctx.Done():
			t.Fatalf("received %d bytes, want %d", got, want)
		}
	}
}

// TestRelayAllocs holds the tracker's offer fan-out to an allocation budget:
// none. The clients are raw sockets that allocate nothing, so AllocsPerRun
// counts the tracker's allocations alone: decoding, the swarm lookup, the
// pick, the pending-offer records, encoding into each connection's queue
// and the writes.
func TestRelayAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are meaningless under -race")
	}
	tr := newTracker(t, signal.Config{AnnounceRate: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ih, senderID := id("allocs"), id("sender")
	const receivers, nOffers = 8, 5
	notify := make(chan struct{}, 1)
	var rs []*rawPeer
	var joined int64
	for i := range receivers {
		p := dialRaw(t, tr.url, notify)
		p.send(t, maskedText(t, announce(ih, id(fmt.Sprint("r", i)), map[string]any{"event": "started"})))
		joined += frameSize(len(wire.AppendAnnounceResponse(nil, &ih, 120, 0, i+1)))
		rs = append(rs, p)
		waitBytes(t, ctx, notify, joined, rs...)
	}
	sender := dialRaw(t, tr.url, notify)
	reply := frameSize(len(wire.AppendAnnounceResponse(nil, &ih, 120, 0, receivers+1)))

	// allocs measures an announce with n offers: the reply to the sender and
	// n offers to n of the receivers.
	var sent, relayed int64
	allocs := func(n int) float64 {
		msg := announce(ih, senderID, map[string]any{"offers": offers(n, "x")})
		frame := maskedText(t, msg)
		var perOp int64
		for _, o := range msg["offers"].([]map[string]any) {
			sdp, _ := json.Marshal(o["offer"])
			var oid wire.Hash
			for i, r := range []rune(o["offer_id"].(string)) {
				oid[i] = byte(r)
			}
			perOp += frameSize(len(wire.AppendOffer(nil, &ih, &senderID, &oid, sdp)))
		}
		op := func() {
			sender.send(t, frame)
			sent += reply
			waitBytes(t, ctx, notify, sent, sender)
			relayed += perOp
			waitBytes(t, ctx, notify, joined+relayed, rs...)
		}
		// Fill the receivers' pending-offer lists to their bound (64) first:
		// growing them is a one-time cost.
		for range 64*receivers/max(n, 1) + 1 {
			op()
		}
		return testing.AllocsPerRun(100, op)
	}
	none, five := allocs(0), allocs(nOffers)
	t.Logf("allocations per announce: %.0f with no offers, %.0f with %d offers to %d of %d peers", none, five, nOffers, nOffers, receivers)
	if none > 0 || five > 0 {
		t.Errorf("an announce costs %.0f allocations with no offers and %.0f with %d, want none", none, five, nOffers)
	}
}
