package signal_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Tests for tracker-protocol.md §7: where Box Signal does better than the
// reference trackers.

func TestPeerIDBelongsToFirstConnection(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("own")
	owner := swarmOf(t, tr, ih, 1, "p")[0]
	thief := dial(t, tr.url)
	thief.send(announce(ih, id("p0"), map[string]any{"event": "stopped"}))
	if r := thief.recv(); str(r, "failure reason") != "peer_id in use by another connection" {
		t.Fatalf("stopped for someone else's peer_id: %v", r)
	}
	thief.send(announce(ih, id("p0"), map[string]any{"event": "started"}))
	thief.recv()
	if got := scrapeCounts(t, thief, ih); got[1] != 1 {
		t.Fatalf("swarm after the attempts: %v, want the owner alone", got)
	}
	// Offers for p0 still reach the owner.
	s := dial(t, tr.url)
	s.send(announce(ih, id("s"), map[string]any{"offers": offers(1, "o")}))
	s.recv()
	offerFrom(t, owner)
	thief.quiet(100 * time.Millisecond)
}

func TestSeveralPeerIDsOnOneSocketAllRemovedOnClose(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("multi")
	page := dial(t, tr.url)
	for _, p := range []string{"a", "b", "c"} {
		page.send(announce(ih, id(p), map[string]any{"event": "started"}))
		page.recv()
	}
	watcher := dial(t, tr.url)
	if got := scrapeCounts(t, watcher, ih); got[1] != 3 {
		t.Fatalf("three peer_ids on one socket: %v", got)
	}
	page.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, func() bool { return gauge(t, tr, "signald_tracker_peers") == 0 })
	if got := scrapeCounts(t, watcher, ih); got[1] != 0 {
		t.Fatalf("after close: %v", got)
	}
}

func TestNoOffersRelayedOnStopped(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("stop")
	other := swarmOf(t, tr, ih, 1, "o")[0]
	c := swarmOf(t, tr, ih, 1, "c")[0]
	c.send(announce(ih, id("c0"), map[string]any{"event": "stopped", "offers": offers(2, "x")}))
	c.recv()
	other.quiet(150 * time.Millisecond)
}

func TestAnswersDoNotChangeCounts(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	ih := id("cnt")
	seeder := dial(t, tr.url)
	seeder.send(announce(ih, id("s"), map[string]any{"event": "started", "left": 0}))
	seeder.recv()
	offerer := dial(t, tr.url)
	offerer.send(announce(ih, id("o"), map[string]any{"left": 0, "offers": offers(1, "q")}))
	offerer.recv()
	o := offerFrom(t, seeder)
	seeder.send(answerMsg(bin(ih), bin(id("s")), bin(id("o")), str(o, "offer_id")))
	offerer.recv()
	if got := scrapeCounts(t, offerer, ih); got[0] != 2 || got[1] != 0 {
		t.Fatalf("counts after an answer %v, want 2 seeders", got)
	}
}

func TestRateLimitPerConnection(t *testing.T) {
	tr := newTracker(t, signal.Config{AnnounceRate: 1, AnnounceBurst: 3})
	c := dial(t, tr.url)
	var failures int
	for range 6 {
		c.send(map[string]any{"action": "scrape"})
		if r := c.recv(); str(r, "failure reason") != "" {
			failures++
			if str(r, "action") != "scrape" {
				t.Errorf("rate-limit failure without action: %v", r)
			}
		}
	}
	if failures != 3 {
		t.Fatalf("%d of 6 requests refused, want 3 (burst 3, 1/s)", failures)
	}
	other := dial(t, tr.url) // a separate bucket
	other.send(map[string]any{"action": "scrape"})
	if r := other.recv(); str(r, "failure reason") != "" {
		t.Fatalf("other connection limited: %v", r)
	}
}

func TestConnectionsPerIPLimit(t *testing.T) {
	tr := newTracker(t, signal.Config{MaxConnsPerIP: 2})
	dial(t, tr.url)
	b := dial(t, tr.url)
	_, resp, err := websocket.Dial(context.Background(), tr.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection from one address: %v %v, want 429", resp, err)
	}
	b.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, func() bool {
		ws, _, err := websocket.Dial(context.Background(), tr.url, nil)
		if err == nil {
			ws.CloseNow()
		}
		return err == nil
	})
}

func TestSwarmsPerConnectionLimit(t *testing.T) {
	tr := newTracker(t, signal.Config{MaxSwarmsPerConn: 2})
	c := dial(t, tr.url)
	for i := range 3 {
		c.send(announce(id(fmt.Sprint("room", i)), id("p"), map[string]any{"event": "started"}))
		r := c.recv()
		if i < 2 && num(r, "interval") != 120 {
			t.Fatalf("announce %d: %v", i, r)
		}
		if i == 2 && str(r, "failure reason") != "too many swarms on this connection" {
			t.Fatalf("announce over the limit: %v", r)
		}
	}
	if got := gauge(t, tr, "signald_tracker_swarms"); got != 2 {
		t.Fatalf("swarms %v, want 2 (the refused one not left behind)", got)
	}
}

// TestFanOutUniform checks that with k offers in a swarm of n others every
// peer is picked equally often (aquatic's pick is not uniform for small k).
func TestFanOutUniform(t *testing.T) {
	tr := newTracker(t, signal.Config{AnnounceRate: -1})
	ih := id("uni")
	const n, rounds = 6, 300
	peers := swarmOf(t, tr, ih, n, "u")
	s := dial(t, tr.url)
	for i := range rounds {
		s.send(announce(ih, id("s"), map[string]any{"offers": offers(1, fmt.Sprint(i))}))
		s.recv()
	}
	waitFor(t, func() bool {
		sum := 0
		for _, p := range peers {
			sum += len(p.in)
		}
		return sum == rounds
	})
	total := 0
	var chi2 float64
	for _, p := range peers {
		got := len(p.in)
		total += got
		d := float64(got) - rounds/float64(n)
		chi2 += d * d / (rounds / float64(n))
	}
	// χ² with 5 degrees of freedom: p = 0.001 at 20.5.
	if total != rounds || chi2 > 20.5 || math.IsNaN(chi2) {
		t.Fatalf("offers per peer not uniform: total %d, χ² %.1f", total, chi2)
	}
}

func TestMetricsPassPromlint(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	c := dial(t, tr.url)
	c.send(announce(id("lint"), id("p"), map[string]any{"event": "started"}))
	c.recv()
	problems, err := testutil.GatherAndLint(tr.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestQuickClosesLeaveNothing: clients that leave right after the upgrade
// (before or while the tracker registers them) leave no connection, peer or
// per-address slot behind.
func TestQuickClosesLeaveNothing(t *testing.T) {
	tr := newTracker(t, signal.Config{MaxConnsPerIP: 4})
	for i := range 60 {
		ws, _, err := websocket.Dial(context.Background(), tr.url, nil)
		if err != nil {
			waitFor(t, func() bool { return gauge(t, tr, "signald_tracker_connections") == 0 })
			continue
		}
		if i%2 == 0 {
			ws.Write(context.Background(), websocket.MessageText, []byte(`{"action":"scrape"}`))
		}
		ws.CloseNow()
	}
	waitFor(t, func() bool { return gauge(t, tr, "signald_tracker_connections") == 0 })
	for range 4 {
		dial(t, tr.url) // every per-address slot is free again
	}
}
