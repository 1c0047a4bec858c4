package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/boxsignal/boxsignal/bugout"
)

// Room is one joined room: its announcers and its WebRTC connections.
type Room struct {
	t        *Transport
	p        *bugout.Peer
	infoHash [20]byte
	peerID   [20]byte
	log      *slog.Logger
	owner    *Transport // closed with the room (Join)

	ctx    context.Context // cancelled by Close: ends the wires
	cancel context.CancelFunc
	wg     sync.WaitGroup // wires, connection setup and closers

	announcers []*announcer // set by Transport.Join before use
	closeOnce  sync.Once

	mu     sync.Mutex
	closed bool
	offers map[[20]byte]*rtcConn // ours awaiting an answer, by offer_id
	conns  map[[20]byte]*rtcConn // answering or answered, by remote peer_id
}

func newRoom(t *Transport, p *bugout.Peer) *Room {
	r := &Room{
		t:        t,
		p:        p,
		infoHash: p.InfoHash(),
		peerID:   p.PeerID(),
		offers:   make(map[[20]byte]*rtcConn),
		conns:    make(map[[20]byte]*rtcConn),
	}
	r.log = t.log.With("info_hash", fmt.Sprintf("%x", r.infoHash))
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// Peer is the room member this Room connects.
func (r *Room) Peer() *bugout.Peer { return r.p }

// Conns is the number of WebRTC connections whose data channel is open.
func (r *Room) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.conns {
		if c.isOpen() {
			n++
		}
	}
	return n
}

// Close announces stopped on every tracker, closes the room's
// connections (so the Peer's wires end) and waits for its goroutines. It
// does not close the Peer: close the Peer first so its leave reaches the
// room. Idempotent.
func (r *Room) Close() error {
	r.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, a := range r.announcers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.close()
			}()
		}
		wg.Wait()
		r.mu.Lock()
		r.closed = true
		var all []*rtcConn
		for _, c := range r.offers {
			all = append(all, c)
		}
		for _, c := range r.conns {
			all = append(all, c)
		}
		r.mu.Unlock()
		r.cancel()
		for _, c := range all {
			c.close()
		}
		r.wg.Wait()
		r.t.remove(r)
		if r.owner != nil {
			r.owner.Close()
		}
	})
	return nil
}

// spawn runs f in a goroutine Close waits for, unless the room is closed.
func (r *Room) spawn(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// full reports whether MaxConns are in use. Call with r.mu held.
func (r *Room) full() bool { return len(r.offers)+len(r.conns) >= r.t.cfg.MaxConns }

type madeOffer struct {
	id  [20]byte
	sdp string
	c   *rtcConn
}

// makeOffers makes up to Offers initiator PeerConnections, each gathered,
// registered under its offer_id and dropped after OfferTimeout.
func (r *Room) makeOffers() []madeOffer {
	var out []madeOffer
	for range r.t.cfg.Offers {
		r.mu.Lock()
		stop := r.closed || r.full()
		r.mu.Unlock()
		if stop {
			break
		}
		o, err := r.makeOffer()
		if err != nil {
			r.log.Debug("make offer", "err", err)
			break
		}
		out = append(out, o)
	}
	return out
}

func (r *Room) makeOffer() (madeOffer, error) {
	var id [20]byte
	rand.Read(id[:])
	c := &rtcConn{r: r, offerID: id, offerer: true}
	pc, err := r.newPC()
	if err != nil {
		return madeOffer{}, err
	}
	c.pc = pc
	fail := func(err error) (madeOffer, error) {
		pc.Close()
		return madeOffer{}, err
	}
	var label [20]byte
	rand.Read(label[:])
	dc, err := pc.CreateDataChannel(hex.EncodeToString(label[:]), nil)
	if err != nil {
		return fail(fmt.Errorf("create data channel: %w", err))
	}
	c.watch(dc)
	pc.OnConnectionStateChange(c.stateChanged)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(fmt.Errorf("create offer: %w", err))
	}
	s, err := r.localSDP(pc, offer)
	if err != nil {
		return fail(err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fail(ErrClosed)
	}
	r.offers[id] = c
	c.timer = time.AfterFunc(r.t.cfg.OfferTimeout, func() { r.spawn(c.closeFor("offer timeout")) })
	r.mu.Unlock()
	return madeOffer{id: id, sdp: s, c: c}, nil
}

// localSDP sets desc as the local description and returns the SDP once
// gathering is complete, or after GatherTimeout with what was gathered:
// the SDP carries every candidate (non-trickle, §3.2).
func (r *Room) localSDP(pc *webrtc.PeerConnection, desc webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	timer := time.NewTimer(r.t.cfg.GatherTimeout)
	defer timer.Stop()
	select {
	case <-gathered:
	case <-timer.C:
	case <-r.ctx.Done():
		return "", ErrClosed
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", fmt.Errorf("no local description")
	}
	return ld.SDP, nil
}

func (r *Room) newPC() (*webrtc.PeerConnection, error) {
	servers, err := r.t.ice.servers(r.ctx)
	if err != nil {
		r.log.Warn("ice servers unavailable; using the last list", "err", err)
	}
	pc, err := r.t.api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	return pc, nil
}

// preferOurs breaks the tie of two connections with one peer: the one
// whose offerer has the lower peer_id survives, on both sides.
func (r *Room) preferOurs(remote [20]byte) bool { return bytes.Compare(r.peerID[:], remote[:]) < 0 }

// answer answers a relayed offer from peer from through tr (§3.1).
func (r *Room) answer(tr *tracker, from, offerID [20]byte, offerSDP string) {
	if r.p.HasWire(from) {
		return
	}
	c := &rtcConn{r: r, remote: from}
	r.mu.Lock()
	if r.closed || r.full() {
		r.mu.Unlock()
		return
	}
	if old := r.conns[from]; old != nil {
		// A second connection: keep the old one unless both are
		// pending and theirs wins the tie.
		if old.isOpen() || !old.offerer || r.preferOurs(from) {
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		old.closeFor("duplicate, their offer wins")()
		r.mu.Lock()
		if r.closed || r.conns[from] != nil {
			r.mu.Unlock()
			return
		}
	}
	r.conns[from] = c
	c.timer = time.AfterFunc(r.t.cfg.ConnectTimeout, func() { r.spawn(c.closeUnlessOpen) })
	r.mu.Unlock()
	ok := r.spawn(func() {
		if err := c.answer(tr, offerID, offerSDP); err != nil {
			r.log.Debug("answer offer", "peer_id", fmt.Sprintf("%q", from[:]), "err", err)
			c.close()
		}
	})
	if !ok {
		c.close()
	}
}

// accept applies a relayed answer to one of our offers.
func (r *Room) accept(from, offerID [20]byte, answerSDP string) {
	r.mu.Lock()
	c := r.offers[offerID]
	if c == nil || r.closed {
		r.mu.Unlock()
		return
	}
	delete(r.offers, offerID)
	old := r.conns[from]
	keepOld := old != nil && (old.isOpen() || old.offerer || !r.preferOurs(from))
	if keepOld || r.p.HasWire(from) {
		r.mu.Unlock()
		r.spawn(c.closeFor("duplicate answer"))
		return
	}
	c.remote = from
	r.conns[from] = c
	c.timer.Stop()
	c.timer = time.AfterFunc(r.t.cfg.ConnectTimeout, func() { r.spawn(c.closeUnlessOpen) })
	r.mu.Unlock()
	if old != nil {
		r.spawn(old.closeFor("duplicate, our offer wins"))
	}
	ok := r.spawn(func() {
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answerSDP}); err != nil {
			r.log.Debug("apply answer", "peer_id", fmt.Sprintf("%q", from[:]), "err", err)
			c.close()
		}
	})
	if !ok {
		c.close()
	}
}
