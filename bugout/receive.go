package bugout

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// handlePayload runs the receive algorithm (§4.5) on one bo_channel payload
// from w (nil in tests and fuzzing): de-duplicate, refuse what is oversized,
// rate limited, malformed, forged, for another room, outside the time window
// or replayed; then update the peer table, emit events, serve RPC, and gossip
// what passed (plus envelopes for others) to every other wire.
func (p *Peer) handlePayload(w *wire, m []byte) {
	if err := p.receive(w, m); err != nil {
		p.refused(w, err)
	}
}

func (p *Peer) receive(w *wire, m []byte) error {
	now := p.now()
	if len(m) > p.cfg.MaxPacketBytes {
		return reject(ErrTooLarge, "%d bytes, limit %d", len(m), p.cfg.MaxPacketBytes)
	}
	key := keyOf(m)
	p.mu.Lock()
	dup := p.seen.has(key, now)
	p.mu.Unlock()
	if dup {
		return nil
	}
	// Rate limit before marking seen: a copy from a well-behaved wire may
	// still come.
	if w != nil && !w.packets.Allow() {
		return reject(ErrRateLimited, "wire over %v packets/s", p.cfg.WirePacketRate)
	}
	p.mu.Lock()
	first := p.seen.add(key, now)
	p.mu.Unlock()
	if !first {
		return nil
	}
	op, err := p.opener.open(m, now)
	if errors.Is(err, errNotForUs) {
		p.gossip(m, w)
		return nil
	}
	if err != nil {
		return err
	}
	ping, err := p.accept(op, now)
	if err != nil {
		return err
	}
	p.gossip(m, w)
	if ping {
		if err := p.Ping(); err != nil {
			p.log.Debug("ping back", "err", err)
		}
	}
	return nil
}

// accept applies an authenticated packet: the per-sender checks, then
// sawPeer and the packet's effect. It reports whether to ping back.
func (p *Peer) accept(op *opened, now time.Time) (ping bool, err error) {
	pkt := &op.pkt
	y := string(pkt.Y)
	if y == typeRPC && !op.encrypted {
		// A plaintext call reaches and runs on every peer of the room.
		return false, reject(ErrPlaintextRPC, "from %s", op.from)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if op.from == p.id.addr {
		// Our own packet re-wrapped by someone (own payloads are seen
		// already): nothing to learn.
		if !p.nonces.add(nonceKey{op.from, string(pkt.N)}, now) {
			return false, reject(ErrReplay, "own packet")
		}
		return false, nil
	}
	e := p.peers[op.from]
	if e != nil && !e.packets.Allow() {
		return false, reject(ErrRateLimited, "%s over %v packets/s", op.from, p.cfg.PeerPacketRate)
	}
	if y == typeRPC && e != nil && !e.calls.Allow() {
		return false, reject(ErrRateLimited, "%s over %v calls/s", op.from, p.cfg.RPCRate)
	}
	if y == typeResponse {
		if err := p.checkResponse(op); err != nil {
			return false, err
		}
	}
	if !p.nonces.add(nonceKey{op.from, string(pkt.N)}, now) {
		return false, reject(ErrReplay, "from %s, n %x", op.from, pkt.N)
	}
	ping, err = p.sawPeer(op.pub, op.ek, true, now)
	if err != nil {
		return false, err
	}
	switch y {
	case typeMessage:
		if !json.Valid(pkt.V) || falsy(pkt.V) {
			p.log.Debug("message dropped: not truthy JSON", "from", op.from)
			break
		}
		p.emit(Event{Type: EventMessage, Address: op.from, Message: json.RawMessage(pkt.V), Encrypted: op.encrypted})
	case typeRPC:
		p.serveLocked(op)
	case typeResponse:
		p.deliverLocked(op)
	case typePing:
		p.emit(Event{Type: EventPing, Address: op.from})
	case typeLeave:
		delete(p.peers, op.from)
		p.emit(Event{Type: EventLeft, Address: op.from})
		ping = false
	}
	return ping, nil
}

// refused logs and counts a refusal.
func (p *Peer) refused(w *wire, err error) {
	r := ReasonOf(err)
	p.mu.Lock()
	p.stats.Rejected[r]++
	p.mu.Unlock()
	if w != nil {
		p.log.Debug("packet refused", "reason", string(r), "wire", w.name(), "err", err)
	} else {
		p.log.Debug("packet refused", "reason", string(r), "err", err)
	}
}

// gossip re-sends a payload, byte for byte, to every other wire.
func (p *Peer) gossip(m []byte, from *wire) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for w := range p.wires {
		if w != from && w.boID != 0 {
			w.sendExtended(w.boID, m)
		}
	}
}

// falsy reports JSON that JavaScript treats as false: null, false, 0, "".
// Invalid JSON is falsy too: Bugout's JSON.parse fails and drops it.
func falsy(v []byte) bool {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return true
	}
	switch x := x.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	}
	return false
}

func hexNonce(b []byte) string { return hex.EncodeToString(b) }
