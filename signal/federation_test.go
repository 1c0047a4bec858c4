package signal_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
)

// bridge joins two trackers the way a federation does, in process: offers
// left over at one go to the other's local peers, answers come back by
// (offerer, offer_id). It is the other side of the seam, not the thing under
// test.
type bridge struct {
	mu      sync.Mutex
	to      *tracker
	calls   int
	lastLoc int
	pending map[[2]wire.Hash]bool // (offerer, offer_id) relayed
	back    *tracker
}

func (b *bridge) Announce(ih, from *wire.Hash, rest []wire.Offer, local int) int {
	b.mu.Lock()
	b.calls++
	b.lastLoc = local
	for _, o := range rest {
		b.pending[[2]wire.Hash{*from, o.ID}] = true
	}
	b.mu.Unlock()
	// Copy: rest is valid only during the call.
	cp := make([]wire.Offer, len(rest))
	for i, o := range rest {
		cp[i] = wire.Offer{ID: o.ID, SDP: bytes.Clone(o.SDP)}
	}
	return b.to.RemoteOffers(ih, from, cp, &route{b: b, ih: *ih, offerer: *from})
}

// route is the Member for an offerer on the other tracker.
type route struct {
	b           *bridge
	ih, offerer wire.Hash
}

func (r *route) DeliverOffer(*wire.Hash, *wire.Hash, *wire.Hash, []byte) bool { return false }

func (r *route) DeliverAnswer(ih, from, offerID *wire.Hash, sdp []byte) bool {
	r.b.mu.Lock()
	ok := r.b.pending[[2]wire.Hash{r.offerer, *offerID}]
	delete(r.b.pending, [2]wire.Hash{r.offerer, *offerID})
	r.b.mu.Unlock()
	return ok && r.b.back.RemoteAnswer(ih, from, &r.offerer, offerID, sdp)
}

func TestFederationOffersLocalFirstThenRemote(t *testing.T) {
	a, b := newTracker(t, signal.Config{}), newTracker(t, signal.Config{})
	br := &bridge{to: b, back: a, pending: map[[2]wire.Hash]bool{}}
	a.SetFederation(br)
	ih := id("fed1")
	local := swarmOf(t, a, ih, 1, "la")
	remote := swarmOf(t, b, ih, 3, "rb")

	x := dial(t, a.url)
	x.send(announce(ih, id("x"), map[string]any{"offers": offers(3, "fx")}))
	if r := x.recv(); num(r, "incomplete") != 2 {
		t.Fatalf("reply %v: want the 2 local peers counted, not remote ones", r)
	}
	offerFrom(t, local[0]) // one offer local
	got := map[string]bool{}
	var first map[string]any
	var answerer *client
	for _, p := range remote {
		select {
		case m := <-p.in:
			got[str(m, "offer_id")] = true
			if str(m, "peer_id") != bin(id("x")) {
				t.Fatalf("remote offer %v: peer_id rewritten", m)
			}
			if first == nil {
				first, answerer = m, p
			}
		case <-time.After(300 * time.Millisecond):
		}
	}
	if len(got) != 2 {
		t.Fatalf("remote peers got offers %v, want the 2 left over, at distinct peers", got)
	}
	br.mu.Lock()
	if br.calls != 2 || br.lastLoc != 2 { // la's announce, then x's
		t.Fatalf("federation saw %d calls, local=%d", br.calls, br.lastLoc)
	}
	br.mu.Unlock()

	// The remote answer reaches x with the answerer's own peer_id.
	answerer.send(answerMsg(bin(ih), mustAnnounced(t, remote, answerer), bin(id("x")), str(first, "offer_id")))
	r := x.recv()
	if r["answer"] == nil || str(r, "offer_id") != str(first, "offer_id") {
		t.Fatalf("answer at x: %v", r)
	}
	// The same answer again is dropped: one answer per offer.
	answerer.send(answerMsg(bin(ih), mustAnnounced(t, remote, answerer), bin(id("x")), str(first, "offer_id")))
	x.quiet(150 * time.Millisecond)
}

// mustAnnounced returns the peer_id that swarmOf gave c.
func mustAnnounced(t *testing.T, cs []*client, c *client) string {
	for i, d := range cs {
		if d == c {
			return bin(id("rb" + string(rune('0'+i))))
		}
	}
	t.Fatal("client not in swarm")
	return ""
}

func TestFederationRemoteOffersNeverForwardedAgain(t *testing.T) {
	a, b := newTracker(t, signal.Config{}), newTracker(t, signal.Config{})
	ab := &bridge{to: b, back: a, pending: map[[2]wire.Hash]bool{}}
	ba := &bridge{to: a, back: b, pending: map[[2]wire.Hash]bool{}}
	a.SetFederation(ab)
	b.SetFederation(ba)
	ih := id("fed2")
	swarmOf(t, b, ih, 1, "rb")
	x := dial(t, a.url)
	x.send(announce(ih, id("x"), map[string]any{"offers": offers(5, "fy")}))
	x.recv()
	time.Sleep(100 * time.Millisecond)
	ba.mu.Lock()
	defer ba.mu.Unlock()
	// b's federation saw b's own announce only, never a's offers.
	if ba.calls != 1 {
		t.Fatalf("b's federation called %d times, want 1 (its local announce)", ba.calls)
	}
}

func TestFederationRemoteAnswerNeedsLocalOfferer(t *testing.T) {
	a := newTracker(t, signal.Config{})
	ih := id("fed3")
	if a.RemoteAnswer(&ih, new(wire.Hash), new(wire.Hash), new(wire.Hash), []byte(`{}`)) {
		t.Fatal("answer delivered into an unknown swarm")
	}
	swarmOf(t, a, ih, 1, "p")
	nobody := id("nobody")
	if a.RemoteAnswer(&ih, new(wire.Hash), &nobody, new(wire.Hash), []byte(`{}`)) {
		t.Fatal("answer delivered to an unknown offerer")
	}
	if c, i := a.LocalPeers(&ih); c+i != 1 {
		t.Fatalf("LocalPeers = %d, %d", c, i)
	}
	if n := a.RemoteOffers(&nobody, &nobody, []wire.Offer{{}}, nil); n != 0 {
		t.Fatalf("RemoteOffers into an unknown swarm delivered %d", n)
	}
}
