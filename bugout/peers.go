package bugout

import (
	"crypto/ed25519"
	"time"

	"golang.org/x/time/rate"
)

// peerEntry is one row of the peer table (§4.7).
type peerEntry struct {
	pub  ed25519.PublicKey
	ek   [32]byte  // where DMs and RPCs to this peer are encrypted to
	last time.Time // last authenticated packet (or the handshake that added it)
	// signed: ek came from a signed packet, not only from an unsigned BEP 10
	// handshake (B4).
	signed  bool
	packets *rate.Limiter
	calls   *rate.Limiter
}

// PeerInfo describes a known peer.
type PeerInfo struct {
	Address   Address
	PublicKey string // base58
	LastSeen  time.Time
	// Verified: we have a signed packet from it, not only the unsigned
	// pk/ek of a BEP 10 handshake.
	Verified bool
}

// sawPeer is Bugout's sawPeer (§4.7) with the B4 rule: signed says whether
// pub and ek come from an authenticated packet. A new or stale address is
// (re)added either way, emitting seen (and server), and we ping back. A
// fresh known address is refreshed only by a signed packet; an unsigned
// handshake never replaces its ek. It reports whether a ping must be sent,
// and fails with ErrTooManyPeers when the table is full. Call with p.mu held.
func (p *Peer) sawPeer(pub ed25519.PublicKey, ek *[32]byte, signed bool, now time.Time) (ping bool, err error) {
	addr := AddressOf(pub)
	if addr == p.id.addr {
		return false, nil
	}
	e := p.peers[addr]
	if e != nil && !e.last.Add(p.cfg.Timeout).Before(now) {
		if signed {
			e.ek, e.last, e.signed = *ek, now, true
		}
		return false, nil
	}
	if e == nil && len(p.peers) >= p.cfg.MaxPeers {
		return false, reject(ErrTooManyPeers, "%d peers, %s refused", len(p.peers), addr)
	}
	p.peers[addr] = &peerEntry{
		pub: pub, ek: *ek, last: now, signed: signed,
		packets: rate.NewLimiter(rate.Limit(p.cfg.PeerPacketRate), p.cfg.PeerPacketBurst),
		calls:   rate.NewLimiter(rate.Limit(p.cfg.RPCRate), p.cfg.RPCBurst),
	}
	p.emit(Event{Type: EventSeen, Address: addr})
	if string(addr) == p.identifier {
		p.emit(Event{Type: EventServer, Address: addr})
	}
	return true, nil
}

// expirePeers drops peers silent for PeerTimeout. Call with p.mu held.
func (p *Peer) expirePeers(now time.Time) {
	for addr, e := range p.peers {
		if e.last.Add(p.cfg.PeerTimeout).Before(now) {
			delete(p.peers, addr)
			p.emit(Event{Type: EventTimeout, Address: addr})
			p.emit(Event{Type: EventLeft, Address: addr})
		}
	}
}

// Peers lists the peer table. Safe for concurrent use.
func (p *Peer) Peers() []PeerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PeerInfo, 0, len(p.peers))
	for addr, e := range p.peers {
		out = append(out, PeerInfo{Address: addr, PublicKey: encodeKey(e.pub), LastSeen: e.last, Verified: e.signed})
	}
	return out
}
