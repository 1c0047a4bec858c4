package dht

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// room is a room (info_hash) with local peers, as the Node sees it.
type room struct {
	ih       wire.Hash
	key      RoomKey
	local    int       // local peers, as of the last announce or tick
	told     int       // the count friends were last told
	wantAt   time.Time // when friends were last told
	provAt   time.Time // last DHT provide
	lookAt   time.Time // last DHT lookup
	looking  bool
	found    []peer.ID // Boxes the DHT named as having the room
	foundTil time.Time
	held     *held // offers waiting for a DHT lookup
}

// held is a copy of the offers of one announce, kept while a lookup runs.
type held struct {
	from    wire.Hash
	offers  []wire.Offer
	expires time.Time
}

// interest is what a Box told this one about a room: its peer count, and
// until when it wants to hear about the room.
type interest struct {
	peers uint32
	until time.Time
}

type pendKey struct{ infoHash, offerer, offerID wire.Hash }

type pend struct {
	box     peer.ID
	expires time.Time
}

// negKey is a Box skipped for a while: for one room, or (zero key) for all.
type negKey struct {
	box peer.ID
	key RoomKey
}

// maxRooms bounds the rooms tracked, and the room interests kept per Box.
const maxRooms = 100_000

// Announce implements signal.Federation: it notes the room's local peers,
// tells friends when that changes, and sends the offers no local peer took
// to Boxes with peers in the room.
func (n *Node) Announce(infoHash, from *wire.Hash, rest []wire.Offer, local int) (taken int) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0
	}
	r := n.rooms[*infoHash]
	if r == nil {
		if len(n.rooms) >= maxRooms {
			return 0
		}
		r = &room{ih: *infoHash, key: KeyOf(infoHash)}
		n.rooms[r.ih] = r
		n.byKey[r.key] = r
	}
	r.local = local
	n.tellLocked(r, now)
	if len(rest) == 0 {
		return 0
	}
	if sent := n.forwardLocked(r, from, rest, now); sent > 0 {
		return sent
	}
	// No Box is known to have peers here: ask the DHT, and keep this
	// announce's offers until it answers.
	if n.kad == nil || r.looking || now.Sub(r.lookAt) < n.cfg.LookupTimeout*6 {
		return 0
	}
	r.looking, r.lookAt = true, now
	r.held = &held{from: *from, offers: cloneOffers(rest), expires: now.Add(2 * n.cfg.LookupTimeout)}
	n.wg.Add(1)
	go n.lookup(r)
	return len(rest)
}

func cloneOffers(os []wire.Offer) []wire.Offer {
	out := make([]wire.Offer, len(os))
	for i, o := range os {
		out[i] = wire.Offer{ID: o.ID, SDP: bytes.Clone(o.SDP)}
	}
	return out
}

// tellLocked sends Want for r to every connected friend when its local
// count changed or the last Want is half-way to expiry.
func (n *Node) tellLocked(r *room, now time.Time) {
	renew := n.cfg.InterestTTL * 2 / 5
	if r.told == r.local && now.Sub(r.wantAt) < renew {
		return
	}
	// Count changes go out at most once per tick, except the first and
	// the last (a room appearing or emptying).
	if r.told != 0 && r.local != 0 && now.Sub(r.wantAt) < n.cfg.Tick {
		return
	}
	r.told, r.wantAt = r.local, now
	w := (&msg{kind: kindWant, key: r.key, peers: uint32(r.local), ttl: uint32(n.cfg.InterestTTL / time.Second)}).encode(nil)
	for _, f := range *n.friends.Load() {
		if n.connected(f.ID) {
			n.enqueueLocked(f.ID, w)
		}
	}
}

func (n *Node) connected(p peer.ID) bool {
	return len(n.h.Network().ConnsToPeer(p)) > 0
}

// forwardLocked sends offers to up to three Boxes with peers in r, at most
// as many to each as it has peers, and returns how many it sent.
func (n *Node) forwardLocked(r *room, from *wire.Hash, offers []wire.Offer, now time.Time) int {
	type cand struct {
		p     peer.ID
		peers int
	}
	var cands []cand
	for p, in := range n.remote[r.key] {
		if in.peers > 0 && now.Before(in.until) && !n.negativeLocked(p, r.key, now) && n.connected(p) {
			cands = append(cands, cand{p, int(in.peers)})
		}
	}
	if now.Before(r.foundTil) {
		for _, p := range r.found {
			if !n.negativeLocked(p, r.key, now) && !slices.ContainsFunc(cands, func(c cand) bool { return c.p == p }) {
				cands = append(cands, cand{p, len(offers)}) // a hint: its count is unknown
			}
		}
	}
	if len(cands) == 0 {
		return 0
	}
	// Most peers first; ties in random (map) order.
	slices.SortStableFunc(cands, func(a, b cand) int { return b.peers - a.peers })
	cands = cands[:min(len(cands), 3)]
	if len(n.pending) >= n.cfg.MaxPending {
		n.expireLocked(now)
		if len(n.pending) >= n.cfg.MaxPending {
			n.m.dropped.WithLabelValues(dropPendingFull).Add(float64(len(offers)))
			return 0
		}
	}
	// Deal offers round-robin, each Box taking no more than its peers.
	batches := make([][]wire.Offer, len(cands))
	for i, j := 0, 0; i < len(offers); j++ {
		progress := false
		for c := range cands {
			if i < len(offers) && len(batches[c]) < cands[c].peers {
				batches[c] = append(batches[c], offers[i])
				i++
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	sent := 0
	for c, b := range batches {
		if len(b) == 0 {
			continue
		}
		p := cands[c].p
		if !n.sendLocked(p, &msg{kind: kindOffers, infoHash: r.ih, from: *from, offers: b}) {
			continue
		}
		for _, o := range b {
			n.pending[pendKey{r.ih, *from, o.ID}] = pend{box: p, expires: now.Add(n.cfg.PendingTTL)}
		}
		n.m.offers.WithLabelValues("out", n.label(p)).Add(float64(len(b)))
		sent += len(b)
	}
	return sent
}

func (n *Node) negativeLocked(p peer.ID, key RoomKey, now time.Time) bool {
	for _, k := range [2]negKey{{box: p}, {box: p, key: key}} {
		if t, ok := n.neg[k]; ok {
			if now.Before(t) {
				return true
			}
			delete(n.neg, k)
		}
	}
	return false
}

// takeInterest records a friend's Want or Have, and answers a Want with
// this Box's count when it has the room.
func (n *Node) takeInterest(p peer.ID, m *msg) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	boxes := n.remote[m.key]
	in := boxes[p]
	if in == nil {
		if m.peers == 0 {
			return
		}
		if boxes == nil {
			if len(n.remote) >= maxRooms {
				n.m.dropped.WithLabelValues(dropTooManyRooms).Inc()
				return
			}
			boxes = make(map[peer.ID]*interest)
			n.remote[m.key] = boxes
		}
		in = new(interest)
		boxes[p] = in
	}
	in.peers = m.peers
	ttl := n.cfg.InterestTTL
	if m.kind == kindWant {
		ttl = min(time.Duration(m.ttl)*time.Second, 2*n.cfg.InterestTTL)
	}
	in.until = now.Add(ttl)
	if m.kind == kindWant {
		if m.peers == 0 { // withdrawn
			delete(boxes, p)
			if len(boxes) == 0 {
				delete(n.remote, m.key)
			}
		}
		if r := n.byKey[m.key]; r != nil && r.local > 0 {
			n.sendLocked(p, &msg{kind: kindHave, key: r.key, peers: uint32(r.local)})
		}
	}
}

// housekeeping refreshes local counts, tells friends about changes, drops
// what expired, and queues DHT provides.
func (n *Node) housekeeping() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.tick(now)
		}
	}
}

func (n *Node) tick(now time.Time) {
	n.mu.Lock()
	rooms := make([]*room, 0, len(n.rooms))
	for _, r := range n.rooms {
		rooms = append(rooms, r)
	}
	n.mu.Unlock()
	// Counting takes the tracker's swarm locks; do it without n.mu.
	counts := make([]int, len(rooms))
	for i, r := range rooms {
		c, l := n.tr.LocalPeers(&r.ih)
		counts[i] = c + l
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, r := range rooms {
		r.local = counts[i]
		n.tellLocked(r, now)
		if r.held != nil && now.After(r.held.expires) {
			r.held = nil
		}
		if r.local == 0 && r.told == 0 && !r.looking {
			delete(n.rooms, r.ih)
			delete(n.byKey, r.key)
			continue
		}
		if n.kad != nil && r.local > 0 && now.Sub(r.provAt) >= n.cfg.ProvideValidity*2/5 {
			select {
			case n.provide <- r.key:
				r.provAt = now
			default:
			}
		}
	}
	n.expireLocked(now)
}

func (n *Node) expireLocked(now time.Time) {
	for k, v := range n.pending {
		if now.After(v.expires) {
			delete(n.pending, k)
		}
	}
	for key, boxes := range n.remote {
		for p, in := range boxes {
			if now.After(in.until) {
				delete(boxes, p)
			}
		}
		if len(boxes) == 0 {
			delete(n.remote, key)
		}
	}
	for k, t := range n.neg {
		if now.After(t) {
			delete(n.neg, k)
		}
	}
}

// provider announces rooms with local peers in the DHT, one at a time.
func (n *Node) provider() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case key := <-n.provide:
			ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
			err := n.kad.Provide(ctx, key.cid(), true)
			cancel()
			if err != nil {
				n.m.provides.WithLabelValues("error").Inc()
				n.log.Debug("DHT provide failed", "err", err)
				// Try again soon (an empty routing table at start, say),
				// not only at the next renewal.
				n.mu.Lock()
				if r := n.byKey[key]; r != nil {
					r.provAt = time.Now().Add(-n.cfg.ProvideValidity*2/5 + 10*n.cfg.Tick)
				}
				n.mu.Unlock()
			} else {
				n.m.provides.WithLabelValues("ok").Inc()
			}
		}
	}
}

// lookup asks the DHT which Boxes have peers in r, and sends r's held
// offers to the first suitable one as soon as it is found.
func (n *Node) lookup(r *room) {
	defer n.wg.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LookupTimeout)
	defer cancel()
	var found []peer.ID
	first := time.Duration(0)
	for ai := range n.kad.FindProvidersAsync(ctx, r.key.cid(), 8) {
		if ai.ID == n.h.ID() || !n.allowed(ai.ID) {
			continue
		}
		if len(ai.Addrs) > 0 {
			n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, 10*time.Minute)
		}
		found = append(found, ai.ID)
		if first == 0 {
			first = time.Since(start)
			n.mu.Lock()
			r.found, r.foundTil = slices.Clone(found), time.Now().Add(n.cfg.NegativeTTL)
			if h := r.held; h != nil && time.Now().Before(h.expires) {
				r.held = nil
				n.forwardLocked(r, &h.from, h.offers, time.Now())
			}
			n.mu.Unlock()
		}
	}
	n.mu.Lock()
	r.looking = false
	if len(found) > 0 {
		r.found, r.foundTil = found, time.Now().Add(n.cfg.NegativeTTL)
	}
	r.held = nil
	n.mu.Unlock()
	switch {
	case ctx.Err() != nil && n.ctx.Err() != nil:
		return // closing
	case len(found) > 0:
		n.m.lookups.WithLabelValues("found").Inc()
		n.m.lookupSeconds.Observe(first.Seconds())
	default:
		n.m.lookups.WithLabelValues("none").Inc()
		n.m.lookupSeconds.Observe(time.Since(start).Seconds())
	}
}
