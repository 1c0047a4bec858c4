package transport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// rtcConn is one PeerConnection of a room, from offer or answer to close.
type rtcConn struct {
	r       *Room
	offerer bool     // we made the offer
	offerID [20]byte // ours, when offerer

	// Guarded by r.mu.
	remote [20]byte // remote peer_id, once known
	timer  *time.Timer
	done   bool // close has run; set with pc read

	pc        *webrtc.PeerConnection // guarded by r.mu once shared
	dcTaken   atomic.Bool
	open      atomic.Bool
	closeOnce sync.Once
}

func (c *rtcConn) isOpen() bool { return c.open.Load() }

// answer makes the answering PeerConnection for a relayed offer and sends
// the non-trickle answer through tr, echoing offer_id and to_peer_id.
func (c *rtcConn) answer(tr *tracker, offerID [20]byte, offerSDP string) error {
	r := c.r
	pc, err := r.newPC()
	if err != nil {
		return err
	}
	r.mu.Lock()
	c.pc = pc
	closed := c.done
	r.mu.Unlock()
	if closed {
		pc.Close()
		return ErrClosed
	}
	pc.OnDataChannel(c.watch)
	pc.OnConnectionStateChange(c.stateChanged)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return fmt.Errorf("set remote description: %w", err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	s, err := r.localSDP(pc, ans)
	if err != nil {
		return err
	}
	r.mu.Lock()
	remote := c.remote
	r.mu.Unlock()
	msg := &announce{
		Action:   "announce",
		InfoHash: binary(r.infoHash),
		PeerID:   binary(r.peerID),
		ToPeerID: binary(remote),
		Answer:   &sdp{Type: "answer", SDP: s},
		OfferID:  binary(offerID),
	}
	if err := tr.send(r.ctx, msg); err != nil {
		return fmt.Errorf("send answer: %w", err)
	}
	return nil
}

// watch takes the connection's one data channel (§3.2) and, when it
// opens, hands it to the Peer as a byte stream.
func (c *rtcConn) watch(dc *webrtc.DataChannel) {
	if !c.dcTaken.CompareAndSwap(false, true) {
		dc.Close()
		return
	}
	r := c.r
	dc.OnOpen(func() {
		rwc, err := dc.Detach()
		if err != nil {
			r.log.Debug("detach data channel", "err", err)
			r.spawn(c.closeFor("detach failed"))
			return
		}
		c.open.Store(true)
		r.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		remote := c.remote
		r.mu.Unlock()
		s := newDCStream(dc, rwc, c.closeFor("stream closed"))
		ok := r.spawn(func() {
			r.log.Debug("data channel open", "peer_id", fmt.Sprintf("%q", remote[:]))
			err := r.p.AddWire(r.ctx, s)
			r.log.Debug("wire ended", "peer_id", fmt.Sprintf("%q", remote[:]), "err", err)
			s.Close()
		})
		if !ok {
			rwc.Close()
		}
	})
}

func (c *rtcConn) stateChanged(s webrtc.PeerConnectionState) {
	if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
		c.r.spawn(c.closeFor("state " + s.String()))
	}
}

func (c *rtcConn) closeUnlessOpen() {
	if !c.isOpen() {
		c.closeFor("connect timeout")()
	}
}

// close forgets the connection and closes its PeerConnection. Idempotent;
// never call it from a pion callback (pc.Close waits for them): spawn it.
func (c *rtcConn) close() { c.closeOnce.Do(c.doClose) }

// closeFor is close with the reason logged at Debug.
func (c *rtcConn) closeFor(why string) func() {
	return func() {
		c.closeOnce.Do(func() {
			c.r.log.Debug("close connection", "why", why, "offerer", c.offerer, "open", c.isOpen())
			c.doClose()
		})
	}
}

func (c *rtcConn) doClose() {
	r := c.r
	r.mu.Lock()
	if c.offerer && r.offers[c.offerID] == c {
		delete(r.offers, c.offerID)
	}
	if r.conns[c.remote] == c {
		delete(r.conns, c.remote)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	pc := c.pc
	c.done = true
	r.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}
