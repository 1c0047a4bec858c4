package dht

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// chain starts alice, bob and carol with the DHT: alice–bob and bob–carol
// are friends, alice and carol are not.
func chain(t *testing.T, p Policy) (a, b, c *box) {
	a = newBox(t, "alice", nil, withDHT(p))
	b = newBox(t, "bob", nil, withDHT(p))
	c = newBox(t, "carol", nil, withDHT(p))
	befriend(a, b)
	befriend(b, c)
	return a, b, c
}

func withDHT(p Policy) boxOpt {
	return func(c *Config) { c.DHT, c.Policy = true, p }
}

// Three Boxes, alice–bob and bob–carol friends, alice and carol not: a
// browser on alice finds the one on carol through the DHT, in the Open
// policy, and their offer and answer go straight between alice and carol.
func TestDHTFindsTheRightBox(t *testing.T) {
	a, b, c := chain(t, Open)
	waitFor(t, "routing tables", func() bool {
		return a.node.kad.RoutingTable().Size() >= 1 && c.node.kad.RoutingTable().Size() >= 1
	})

	ih, x, y := hashOf("dht-room"), hashOf("browser-x"), hashOf("browser-y")
	cy := dial(t, c.url)
	cy.announce(ih, y, 1, "y")
	waitFor(t, "carol to provide the room", func() bool { return c.counter("signald_dht_provides_total", "result", "ok") >= 1 })
	if a.knows(c.node.ID(), ih) {
		t.Fatal("alice knows carol's room without the DHT")
	}

	ax := dial(t, a.url)
	ax.announce(ih, x, 2, "x")
	offer := cy.next("offer", 10*time.Second)
	if offer["peer_id"] != bin(x) {
		t.Fatalf("offer at y %v", offer)
	}
	cy.answer(ih, y, offer)
	if ans := ax.next("answer", 5*time.Second); ans["peer_id"] != bin(y) {
		t.Fatalf("answer at x %v", ans)
	}
	if got := a.counter("signald_federation_offers_total", "direction", "out", "box", "stranger"); got < 1 {
		t.Errorf("alice offers to carol counted as %v", got)
	}
	// The lookup goes on after the first Box is found; it is counted when
	// it ends.
	waitFor(t, "the lookup counted as found", func() bool {
		return a.counter("signald_dht_lookups_total", "result", "found") == 1
	})
	// bob relayed nothing: the DHT only named carol.
	if got := b.counter("signald_federation_offers_total"); got != 0 {
		t.Errorf("bob relayed %v offers", got)
	}
}

// In the default friends-only policy, the same setup finds no Box: carol
// is not alice's friend, and alice does not deal with her.
func TestDHTFriendsOnlyRefusesStrangers(t *testing.T) {
	a, _, c := chain(t, FriendsOnly)
	ih, x, y := hashOf("dht-room2"), hashOf("browser-x"), hashOf("browser-y")
	cy := dial(t, c.url)
	cy.announce(ih, y, 1, "y")
	waitFor(t, "carol to provide the room", func() bool {
		return c.counter("signald_dht_provides_total") >= 1
	})
	ax := dial(t, a.url)
	ax.announce(ih, x, 2, "x")
	waitFor(t, "alice's lookup to end", func() bool { return a.counter("signald_dht_lookups_total") >= 1 })
	cy.none("offer", 300*time.Millisecond)
	if got := a.counter("signald_dht_lookups_total", "result", "none"); got != 1 {
		t.Errorf("lookups with no Box = %v, want 1", got)
	}
}

// staticTracker has peers in every room; the DHT benchmark needs a Tracker
// and measures the lookup only.
type staticTracker struct{}

func (staticTracker) RemoteOffers(*wire.Hash, *wire.Hash, []wire.Offer, signal.Member) int { return 0 }
func (staticTracker) RemoteAnswer(*wire.Hash, *wire.Hash, *wire.Hash, *wire.Hash, []byte) bool {
	return false
}
func (staticTracker) LocalPeers(*wire.Hash) (int, int) { return 0, 1 }

// BenchmarkDHTLookup50 measures a room lookup among 50 Boxes on libp2p's
// mocknet with 5 ms links (10 ms round trip), each Box connected to 4
// random others: the time from the lookup's start to the first Box found,
// which is when a Node sends the offers it held.
func BenchmarkDHTLookup50(b *testing.B) {
	const boxes = 50
	mn := mocknet.New()
	defer mn.Close()
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: 5 * time.Millisecond})
	nodes := make([]*Node, boxes)
	for i := range nodes {
		h, err := mn.GenPeer()
		if err != nil {
			b.Fatal(err)
		}
		n, err := New(Config{Host: h, DHT: true, Policy: Open, Tick: time.Hour, Logger: quiet(b)}, staticTracker{})
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		nodes[i] = n
	}
	if err := mn.LinkAll(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i, n := range nodes {
		for range 4 {
			j := rand.IntN(boxes)
			if j != i {
				n.h.Connect(ctx, peer.AddrInfo{ID: nodes[j].ID(), Addrs: nodes[j].h.Addrs()})
			}
		}
	}
	for _, n := range nodes {
		<-n.kad.RefreshRoutingTable()
	}
	rooms := make([]RoomKey, 20)
	for i := range rooms {
		ih := hashOf(fmt.Sprintf("room-%d", i))
		rooms[i] = KeyOf(&ih)
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := nodes[i].kad.Provide(pctx, rooms[i].cid(), true); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	b.ResetTimer()
	var times []time.Duration
	local := 0
	for i := 0; b.Loop(); i++ {
		r := i % len(rooms)
		n := nodes[boxes-1-(i%(boxes-len(rooms)))]
		if n.kad.ProviderStore() != nil {
			if ps, _ := n.kad.ProviderStore().GetProviders(ctx, rooms[r].cid().Hash()); len(ps) > 0 {
				local++ // this Box stores the record itself: no network round trip
			}
		}
		start := time.Now()
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var first time.Duration
		for ai := range n.kad.FindProvidersAsync(lctx, rooms[r].cid(), 1) {
			if ai.ID == nodes[r].ID() && first == 0 {
				first = time.Since(start) // the Node acts on the first Box found
			}
		}
		cancel()
		if first == 0 {
			b.Fatalf("lookup %d did not find room %d's Box", i, r)
		}
		times = append(times, first)
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(times[len(times)/2]), "p50-ms")
	b.ReportMetric(ms(times[len(times)*9/10]), "p90-ms")
	b.ReportMetric(ms(times[len(times)-1]), "max-ms")
	b.ReportMetric(100*float64(local)/float64(len(times)), "%stored-locally")
}

// BenchmarkOfferRelay measures a browser's offer→answer round trip through
// one tracker (local) and across two federated Boxes on 127.0.0.1
// (federated); the difference is what federation adds.
func BenchmarkOfferRelay(b *testing.B) {
	for _, mode := range []string{"local", "federated"} {
		b.Run(mode, func(b *testing.B) {
			unlimited := func(c *Config) { c.FriendRate, c.BoxRate, c.RoomRate = 1e6, 1e6, 1e6 }
			a := newBox(b, "alice", nil, unlimited)
			other := a
			if mode == "federated" {
				other = newBox(b, "bob", nil, unlimited)
				befriend(a, other)
			}
			ih, x, y := hashOf("bench-"+mode), hashOf("browser-x"), hashOf("browser-y")
			by := dial(b, other.url)
			by.announce(ih, y, 0, "y")
			by.next("interval", 5*time.Second)
			if mode == "federated" {
				waitFor(b, "interest", func() bool { return a.knows(other.node.ID(), ih) })
			}
			ax := dial(b, a.url)
			for i := 0; b.Loop(); i++ {
				ax.announce(ih, x, 1, fmt.Sprintf("x%d", i))
				o := by.next("offer", 5*time.Second)
				by.answer(ih, y, o)
				ax.next("answer", 5*time.Second)
			}
		})
	}
}

// A provider record outlives its Box: the lookup still names the dead Box,
// the dial fails within DialTimeout, the Box is skipped for NegativeTTL,
// and the Box that looked stays healthy.
func TestStaleProviderRecordIsAHint(t *testing.T) {
	a, _, c := chain(t, Open)
	ih, x, y := hashOf("stale-room"), hashOf("browser-x"), hashOf("browser-y")
	cy := dial(t, c.url)
	cy.announce(ih, y, 1, "y")
	waitFor(t, "carol to provide", func() bool { return c.counter("signald_dht_provides_total", "result", "ok") >= 1 })
	c.stop()

	ax := dial(t, a.url)
	ax.announce(ih, x, 2, "x")
	waitFor(t, "the lookup to end", func() bool { return a.counter("signald_dht_lookups_total") >= 1 })
	waitFor(t, "carol counted unreachable", func() bool {
		return a.counter("signald_federation_dropped_total", "reason", dropUnreachable) >= 1
	})
	a.node.mu.Lock()
	skipped := a.node.negativeLocked(c.node.ID(), KeyOf(&ih), time.Now())
	a.node.mu.Unlock()
	if !skipped {
		t.Error("a dead Box is not in the negative cache")
	}
	// alice still serves her own browsers.
	az := dial(t, a.url)
	az.announce(ih, hashOf("browser-z"), 1, "z")
	o := ax.next("offer", 5*time.Second)
	ax.answer(ih, x, o)
	az.next("answer", 5*time.Second)
}
