package dht

import (
	"context"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-msgio"
	ma "github.com/multiformats/go-multiaddr"
)

// Two browsers on two friends' Boxes, in one room, complete an offer/answer
// exchange through the federation, with their own IDs.
func TestFriendsRelayOfferAndAnswer(t *testing.T) {
	a, b := newBox(t, "alice", nil), newBox(t, "bob", nil)
	befriend(a, b)
	waitFor(t, "friends connected", func() bool { return a.counter("signald_federation_friends_connected") == 1 })

	ih, x, y := hashOf("room-1"), hashOf("browser-x"), hashOf("browser-y")
	by := dial(t, b.url)
	by.announce(ih, y, 3, "y") // alone on bob: its offers have nowhere to go
	by.next("interval", 5*time.Second)
	waitFor(t, "alice to learn bob's room", func() bool { return a.knows(b.node.ID(), ih) })

	ax := dial(t, a.url)
	ax.announce(ih, x, 3, "x")
	if r := ax.next("interval", 5*time.Second); r["incomplete"].(float64) != 1 {
		t.Fatalf("x's reply %v: counts are this Box's own peers", r)
	}
	offer := by.next("offer", 5*time.Second)
	if offer["peer_id"] != bin(x) || offer["info_hash"] != bin(ih) {
		t.Fatalf("offer at y: %v (IDs must not be rewritten)", offer)
	}
	by.none("offer", 200*time.Millisecond) // one peer on bob: one offer
	by.answer(ih, y, offer)
	ans := ax.next("answer", 5*time.Second)
	if ans["peer_id"] != bin(y) || ans["offer_id"] != offer["offer_id"] {
		t.Fatalf("answer at x: %v", ans)
	}
	if got := a.counter("signald_federation_offers_total", "direction", "out", "box", "bob"); got != 1 {
		t.Errorf("alice offers out = %v, want 1", got)
	}
	if got := b.counter("signald_federation_answers_total", "direction", "out", "box", "alice"); got != 1 {
		t.Errorf("bob answers out = %v, want 1", got)
	}
	if got := a.counter("signald_federation_answers_total", "direction", "in", "box", "bob"); got != 1 {
		t.Errorf("alice answers in = %v, want 1", got)
	}

	// The same answer again is not delivered twice.
	by.answer(ih, y, offer)
	ax.none("answer", 300*time.Millisecond)

	// And the other way: y's next announce reaches x on alice.
	by.announce(ih, y, 2, "y2")
	o2 := ax.next("offer", 5*time.Second)
	ax.answer(ih, x, o2)
	if a2 := by.next("answer", 5*time.Second); a2["peer_id"] != bin(x) {
		t.Fatalf("answer at y: %v", a2)
	}
}

// friendsWithRoom starts alice and bob, friends, with browser-y in room on
// bob, and returns once alice knows it.
func friendsWithRoom(t *testing.T, room string) (a, b *box, by *browser) {
	a, b = newBox(t, "alice", nil), newBox(t, "bob", nil)
	befriend(a, b)
	ih := hashOf(room)
	by = dial(t, b.url)
	by.announce(ih, hashOf("browser-y"), 1, "y")
	waitFor(t, "alice to learn bob's room", func() bool { return a.knows(b.node.ID(), ih) })
	return a, b, by
}

// rawFriend is a libp2p host that a Box lists as a friend, which speaks the
// relay protocol by hand: it can send anything.
func rawFriend(t *testing.T, to *box, name string) (peer.ID, func(m *msg)) {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	to.node.SetFriends(append(friendsOf(to), Friend{ID: h.ID(), Name: name}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: to.node.ID(), Addrs: to.node.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, to.node.ID(), RelayProtocol)
	if err != nil {
		t.Fatal(err)
	}
	w := msgio.NewVarintWriter(s)
	return h.ID(), func(m *msg) {
		if err := w.WriteMsg(m.encode(nil)); err != nil {
			t.Fatal(err)
		}
	}
}

// An answer for an offer a Box did not relay to the sender, or relayed to
// another Box, is dropped.
func TestForgedAndUnsolicitedAnswersDropped(t *testing.T) {
	a, _, by := friendsWithRoom(t, "room-2")
	ih, x, y := hashOf("room-2"), hashOf("browser-x"), hashOf("browser-y")
	ax := dial(t, a.url)
	ax.announce(ih, x, 1, "x")
	offer := by.next("offer", 5*time.Second)

	// carol, another friend of alice, forges bob's answer.
	_, send := rawFriend(t, a, "carol")
	forged := &msg{kind: kindAnswer, infoHash: ih, from: y, to: x, offerID: hashOf("xa"), sdp: []byte(`{"type":"answer","sdp":"forged"}`)}
	send(forged)
	// and an answer to an offer nobody made.
	send(&msg{kind: kindAnswer, infoHash: ih, from: y, to: x, offerID: hashOf("nope"), sdp: []byte(`{"type":"answer","sdp":"x"}`)})
	waitFor(t, "two unsolicited answers counted", func() bool {
		return a.counter("signald_federation_dropped_total", "reason", dropUnsolicited) == 2
	})
	ax.none("answer", 200*time.Millisecond)

	// bob's real answer still gets through.
	by.answer(ih, y, offer)
	if ans := ax.next("answer", 5*time.Second); ans["peer_id"] != bin(y) {
		t.Fatalf("answer %v", ans)
	}
}

// A malformed message resets the stream; the Box stays healthy.
func TestMalformedMessageResetsStream(t *testing.T) {
	a := newBox(t, "alice", nil)
	_, send := rawFriend(t, a, "mallory")
	send(&msg{kind: kindAnswer, sdp: []byte(`{"type":"answer","sdp":"x"}`)}) // fine on the wire ...
	bad := &msg{kind: kindOffers, infoHash: hashOf("r"), from: hashOf("f")}
	send(bad) // ... but an Offers without offers is malformed
	waitFor(t, "malformed counted", func() bool {
		return a.counter("signald_federation_dropped_total", "reason", dropMalformed) == 1
	})
}

// A Box that is not a friend is refused at the connection gater, and (on a
// host without a gater) again by the handler.
func TestNonFriendRefused(t *testing.T) {
	a := newBox(t, "alice", nil)
	k, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// With TCP and Noise the dialer may see its handshake finish before the
	// Box's gater closes the connection, so Connect can return nil; the
	// connection must not survive and no stream may open.
	h.Connect(ctx, peer.AddrInfo{ID: a.node.ID(), Addrs: a.node.Host().Addrs()})
	if _, err := h.NewStream(network.WithNoDial(ctx, "test"), a.node.ID(), RelayProtocol); err == nil {
		t.Fatal("a stranger opened a relay stream to a friends-only Box")
	}
	waitFor(t, "refusal counted", func() bool { return a.counter("signald_federation_refused_total") >= 1 })

	// The handler checks too: mocknet hosts have no gater.
	mn := mocknet.New()
	defer mn.Close()
	ha, _ := mn.GenPeer()
	hs, _ := mn.GenPeer()
	mn.LinkAll()
	m := newBox(t, "mock", ha)
	if _, err := mn.ConnectPeers(hs.ID(), ha.ID()); err != nil {
		t.Fatal(err)
	}
	s, err := hs.NewStream(ctx, ha.ID(), RelayProtocol)
	if err != nil {
		t.Fatal(err)
	}
	msgio.NewVarintWriter(s).WriteMsg((&msg{kind: kindWant, key: KeyOf(new(wire.Hash)), peers: 1, ttl: 60}).encode(nil))
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("stream from a stranger not reset")
	}
	if m.counter("signald_federation_refused_total") != 1 {
		t.Error("handler refusal not counted")
	}
}

// Killing a Box mid-signal leaves its friend healthy: pending offers to it
// are dropped, local relaying goes on, and nothing more is sent its way.
func TestFriendDiesMidSignal(t *testing.T) {
	a, b, by := friendsWithRoom(t, "room-3")
	ih, x := hashOf("room-3"), hashOf("browser-x")
	ax := dial(t, a.url)
	ax.announce(ih, x, 2, "x")
	by.next("offer", 5*time.Second)
	if a.counter("signald_federation_pending_offers") != 1 {
		t.Fatalf("pending = %v, want 1", a.counter("signald_federation_pending_offers"))
	}

	b.stop() // bob dies before y answers
	waitFor(t, "alice to forget bob", func() bool {
		return a.counter("signald_federation_friends_connected") == 0 && a.counter("signald_federation_pending_offers") == 0 && !a.knows(b.node.ID(), ih)
	})

	// Alice still relays between her own browsers.
	az := dial(t, a.url)
	z := hashOf("browser-z")
	az.announce(ih, z, 1, "z")
	o := ax.next("offer", 5*time.Second)
	ax.answer(ih, x, o)
	if ans := az.next("answer", 5*time.Second); ans["peer_id"] != bin(x) {
		t.Fatalf("local answer %v", ans)
	}
	before := a.counter("signald_federation_offers_total", "direction", "out")
	ax.announce(ih, x, 3, "x2")
	ax.next("interval", 5*time.Second)
	if got := a.counter("signald_federation_offers_total", "direction", "out"); got != before {
		t.Fatalf("offers sent toward a dead Box: %v -> %v", before, got)
	}
}

// Friends federate over QUIC as well as TCP.
func TestFriendsOverQUIC(t *testing.T) {
	quic := func(c *Config) { c.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} }
	a, b := newBox(t, "alice", nil, quic), newBox(t, "bob", nil, quic)
	befriend(a, b)
	waitFor(t, "friends connected", func() bool { return a.counter("signald_federation_friends_connected") == 1 })
	for _, c := range a.node.Host().Network().ConnsToPeer(b.node.ID()) {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_QUIC_V1); err != nil {
			t.Fatalf("connection over %v, want QUIC", c.RemoteMultiaddr())
		}
	}
	ih := hashOf("quic-room")
	by := dial(t, b.url)
	by.announce(ih, hashOf("y"), 1, "y")
	waitFor(t, "interest", func() bool { return a.knows(b.node.ID(), ih) })
	ax := dial(t, a.url)
	ax.announce(ih, hashOf("x"), 1, "x")
	o := by.next("offer", 5*time.Second)
	by.answer(ih, hashOf("y"), o)
	ax.next("answer", 5*time.Second)
}
