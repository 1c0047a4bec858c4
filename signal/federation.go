package signal

import (
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
)

// A Federation carries offers that no local peer took to peers on other
// Boxes (package dht implements it). A Server without one pays nothing for
// it.
type Federation interface {
	// Announce is called after every local announce other than "stopped",
	// once its offers have gone to local peers. rest holds the offers no
	// local peer took (often none); local is the swarm's local peer count,
	// the announcer included. Announce returns how many of rest it took.
	// It runs on the connection's event loop: it must not block, and rest
	// is valid only during the call.
	Announce(infoHash, from *wire.Hash, rest []wire.Offer, local int) (taken int)
}

type fedHolder struct{ f Federation }

// SetFederation makes f receive the offers local peers cannot take; nil
// turns federation off. It may be called at any time.
func (s *Server) SetFederation(f Federation) {
	if f == nil {
		s.fed.Store(nil)
		return
	}
	s.fed.Store(&fedHolder{f})
}

func (s *Server) federation() Federation {
	if h := s.fed.Load(); h != nil {
		return h.f
	}
	return nil
}

// RemoteOffers gives offers made by the peer from on another Box to distinct
// random local peers of infoHash, one offer each, and returns how many it
// delivered. Their answers go to back, which knows the offerer. It never
// calls the Federation: an offer crosses at most one Box boundary.
func (s *Server) RemoteOffers(infoHash, from *wire.Hash, offers []wire.Offer, back Member) int {
	if len(offers) == 0 {
		return 0
	}
	sw := s.table.get(infoHash)
	if sw == nil {
		return 0
	}
	now := time.Now().Unix()
	var targetBuf [16]*peer
	var memberBuf [16]Member
	// A browser announcing to several Boxes is a local peer here too: it
	// gets no offer of its own.
	targets := sw.pick(targetBuf[:0], sw.peers[*from], min(len(offers), s.cfg.MaxOffers))
	members := memberBuf[:0]
	deadline := now + int64(s.cfg.OfferTTL/time.Second)
	for i, t := range targets {
		t.addExpect(expectation{from: *from, offerID: offers[i].ID, deadline: deadline, back: back}, now)
		members = append(members, t.m)
	}
	sw.mu.Unlock()
	n := 0
	for i, m := range members {
		if m.DeliverOffer(infoHash, from, &offers[i].ID, offers[i].SDP) {
			s.m.offers.Inc()
			n++
		} else {
			s.m.dropped.WithLabelValues(dropMemberBusy).Inc()
		}
	}
	return n
}

// RemoteAnswer delivers the answer of the peer from on another Box to the
// local offerer to, and reports whether it did. The caller has checked that
// it relayed that offer of to's to that Box.
func (s *Server) RemoteAnswer(infoHash, from, to, offerID *wire.Hash, sdp []byte) bool {
	sw := s.table.get(infoHash)
	if sw == nil {
		s.m.dropped.WithLabelValues(dropOffererGone).Inc()
		return false
	}
	o := sw.peers[*to]
	if o == nil {
		sw.mu.Unlock()
		s.m.dropped.WithLabelValues(dropOffererGone).Inc()
		return false
	}
	m := o.m
	sw.mu.Unlock()
	if !m.DeliverAnswer(infoHash, from, offerID, sdp) {
		s.m.dropped.WithLabelValues(dropMemberBusy).Inc()
		return false
	}
	s.m.answers.Inc()
	return true
}

// LocalPeers returns the counts of infoHash's local swarm.
func (s *Server) LocalPeers(infoHash *wire.Hash) (complete, incomplete int) {
	sw := s.table.get(infoHash)
	if sw == nil {
		return 0, 0
	}
	complete, incomplete = sw.counts()
	sw.mu.Unlock()
	return complete, incomplete
}
