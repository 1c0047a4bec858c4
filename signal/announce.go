package signal

import (
	"errors"
	"sync"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/gobwas/ws"
)

var errTooManySwarms = errors.New("signal: too many swarms on one connection")

var requests = sync.Pool{New: func() any { return new(wire.Request) }}

// handle serves one client message; on is the event loop running it, or
// nil.
func (c *conn) handle(on *loop, data []byte) {
	s := c.srv
	s.m.bytesIn.Add(float64(len(data)))
	req := requests.Get().(*wire.Request)
	defer requests.Put(req)
	if err := wire.Decode(data, req, s.lim); err != nil {
		var we *wire.Error
		errors.As(err, &we)
		reason := reasonInvalidRequest
		if we == wire.ErrInvalidJSON || we == wire.ErrNotObject {
			reason = reasonInvalidJSON
		}
		c.fail(on, req, we.Reason, reason)
		s.log.Debug("refused request", "remote", c.ip, "reason", we.Reason)
		return
	}
	now := time.Now()
	if !c.allow(now) {
		c.fail(on, req, "rate limited: too many requests on this connection", reasonRateLimited)
		return
	}
	switch {
	case req.Action == wire.ActionScrape:
		c.scrape(on, req)
	case req.IsAnswer():
		c.answer(on, req, now.Unix())
	default:
		c.announce(on, req, now.Unix())
	}
}

// fail sends a failure reply carrying action, and info_hash when known.
func (c *conn) fail(on *loop, req *wire.Request, failure, reason string) {
	c.srv.m.failures.WithLabelValues(reason).Inc()
	var ih *wire.Hash
	if req.HasInfoHash {
		ih = &req.InfoHash
	}
	if b, start, ok := c.begin(); ok {
		c.end(on, wire.AppendFailure(b, req.Action, ih, failure), start, ws.OpText)
	}
}

func (c *conn) announce(on *loop, req *wire.Request, now int64) {
	s := c.srv
	c.lastActive.Store(now)
	s.m.announceByEvent[req.Event].Inc()

	var sw *swarm
	if req.Event == wire.EventStopped {
		if sw = s.table.get(&req.InfoHash); sw == nil {
			c.reply(on, req, 0, 0)
			return
		}
	} else {
		var created bool
		if sw, created = s.table.getOrCreate(&req.InfoHash); created {
			s.m.swarms.Add(1)
		}
	}

	p := sw.peers[req.PeerID]
	switch {
	case p != nil && p.m != Member(c):
		// A peer_id belongs to the connection that announced it first.
		sw.mu.Unlock()
		c.fail(on, req, "peer_id in use by another connection", reasonPeerIDInUse)
		return
	case req.Event == wire.EventStopped:
		if p != nil {
			sw.remove(p)
			s.m.peers.Add(-1)
			c.forget(&req.InfoHash, &req.PeerID)
		}
		complete, incomplete := sw.counts()
		if s.table.release(sw) {
			s.m.swarms.Add(-1)
		}
		c.reply(on, req, complete, incomplete)
		return
	case p == nil:
		if err := c.remember(&req.InfoHash, &req.PeerID); err != nil {
			if s.table.release(sw) {
				s.m.swarms.Add(-1)
			}
			if errors.Is(err, errTooManySwarms) {
				c.fail(on, req, "too many swarms on this connection", reasonTooManySwarms)
			}
			return
		}
		p = &peer{id: req.PeerID, m: c}
		sw.add(p)
		s.m.peers.Add(1)
	}
	p.last = now
	seeder := req.Seeder
	if req.Event == wire.EventCompleted {
		if !p.seeder {
			sw.downloaded++
		}
		seeder = true
	}
	sw.setSeeder(p, seeder)

	// Fan out: offer i goes to the i-th of k distinct random other peers.
	k := len(req.Offers)
	if req.Numwant >= 0 {
		k = min(k, req.Numwant)
	}
	var targetBuf [16]*peer
	var memberBuf [16]Member
	targets := sw.pick(targetBuf[:0], p, k)
	members := memberBuf[:0]
	deadline := now + int64(s.cfg.OfferTTL/time.Second)
	for i, t := range targets {
		t.addExpect(expectation{from: p.id, offerID: req.Offers[i].ID, deadline: deadline}, now)
		members = append(members, t.m)
	}
	complete, incomplete := sw.counts()
	sw.mu.Unlock()

	c.reply(on, req, complete, incomplete)
	for i, m := range members {
		o := &req.Offers[i]
		if deliverOffer(on, m, &req.InfoHash, &req.PeerID, &o.ID, o.SDP) {
			s.m.offers.Inc()
		} else {
			s.m.dropped.WithLabelValues(dropMemberBusy).Inc()
		}
	}
	// Offers no local peer took go to other Boxes, if this Box has friends.
	taken := 0
	if f := s.federation(); f != nil {
		taken = f.Announce(&req.InfoHash, &req.PeerID, req.Offers[len(targets):k], complete+incomplete)
	}
	if n := len(req.Offers) - len(targets) - taken + req.DroppedOffers; n > 0 {
		s.m.dropped.WithLabelValues(dropNoPeers).Add(float64(n))
	}
}

func (c *conn) reply(on *loop, req *wire.Request, complete, incomplete int) {
	if b, start, ok := c.begin(); ok {
		b = wire.AppendAnnounceResponse(b, &req.InfoHash, int(c.srv.cfg.Interval/time.Second), complete, incomplete)
		c.end(on, b, start, ws.OpText)
	}
}

// deliverOffer gives an offer to m; a local connection queues it in the
// turn of on.
func deliverOffer(on *loop, m Member, infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	if c, ok := m.(*conn); ok {
		return c.deliverOffer(on, infoHash, from, offerID, sdp)
	}
	return m.DeliverOffer(infoHash, from, offerID, sdp)
}

func deliverAnswer(on *loop, m Member, infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	if c, ok := m.(*conn); ok {
		return c.deliverAnswer(on, infoHash, from, offerID, sdp)
	}
	return m.DeliverAnswer(infoHash, from, offerID, sdp)
}

// answer routes an answer to the offerer, only if this tracker relayed that
// offer from the offerer to this peer and it has not been answered yet. The
// answerer gets no reply, as with bittorrent-tracker.
func (c *conn) answer(on *loop, req *wire.Request, now int64) {
	s := c.srv
	c.lastActive.Store(now)
	drop := func(reason string) {
		s.m.dropped.WithLabelValues(reason).Inc()
		s.log.Debug("answer dropped", "remote", c.ip, "reason", reason)
	}
	sw := s.table.get(&req.InfoHash)
	if sw == nil {
		drop(dropUnknownAnswerer)
		return
	}
	a := sw.peers[req.PeerID]
	if a == nil || a.m != Member(c) {
		sw.mu.Unlock()
		drop(dropUnknownAnswerer)
		return
	}
	a.last = now
	m, ok := a.takeExpect(&req.ToPeerID, &req.OfferID, now)
	if !ok {
		sw.mu.Unlock()
		drop(dropUnexpectedAnswer)
		return
	}
	if m == nil { // the offerer is local
		o := sw.peers[req.ToPeerID]
		if o == nil {
			sw.mu.Unlock()
			drop(dropOffererGone)
			return
		}
		m = o.m
	}
	sw.mu.Unlock()
	if deliverAnswer(on, m, &req.InfoHash, &req.PeerID, &req.OfferID, req.Answer) {
		s.m.answers.Inc()
	} else {
		drop(dropMemberBusy)
	}
}

// scrape replies with the counts of the named swarms (0 for unknown ones),
// or of every swarm when none is named, as bittorrent-tracker does.
func (c *conn) scrape(on *loop, req *wire.Request) {
	s := c.srv
	s.m.scrapes.Inc()
	var files []wire.ScrapeFile
	fill := func(sw *swarm, f *wire.ScrapeFile) {
		f.Complete, f.Incomplete = sw.counts()
		f.Downloaded = sw.downloaded
	}
	if req.AllSwarms {
		s.table.each(func(sw *swarm) {
			files = append(files, wire.ScrapeFile{InfoHash: sw.hash})
			fill(sw, &files[len(files)-1])
		})
	} else {
		files = make([]wire.ScrapeFile, len(req.InfoHashes))
		for i, h := range req.InfoHashes {
			files[i].InfoHash = h
			if sw := s.table.get(&h); sw != nil {
				fill(sw, &files[i])
				sw.mu.Unlock()
			}
		}
	}
	if b, start, ok := c.begin(); ok {
		c.end(on, wire.AppendScrapeResponse(b, files, int(s.cfg.Interval/time.Second)*5), start, ws.OpText)
	}
}
