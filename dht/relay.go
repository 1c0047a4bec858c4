package dht

import (
	"context"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
)

// A link is this Box's outbound relay stream to one Box, with its queue and
// writer goroutine. It is created on the first message to that Box and
// removed when the stream fails.
type link struct {
	p    peer.ID
	q    chan []byte
	quit chan struct{}
}

const linkQueue = 256

func (l *link) stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
}

// sendLocked queues m for p without blocking, and reports whether it was
// queued.
func (n *Node) sendLocked(p peer.ID, m *msg) bool { return n.enqueueLocked(p, m.encode(nil)) }

// enqueueLocked queues an encoded message for p; b is not modified later,
// so one encoding may go to several Boxes.
func (n *Node) enqueueLocked(p peer.ID, b []byte) bool {
	if n.closed {
		return false
	}
	l := n.links[p]
	if l == nil {
		l = &link{p: p, q: make(chan []byte, linkQueue), quit: make(chan struct{})}
		n.links[p] = l
		n.wg.Add(1)
		go n.write(l)
	}
	select {
	case l.q <- b:
		return true
	default:
		n.m.dropped.WithLabelValues(dropQueueFull).Inc()
		return false
	}
}

func (n *Node) send(p peer.ID, m *msg) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sendLocked(p, m)
}

// write opens the stream to l.p and writes l's queue to it until the stream
// fails or the link stops.
func (n *Node) write(l *link) {
	defer n.wg.Done()
	defer n.dropLink(l)
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.DialTimeout)
	s, err := n.h.NewStream(ctx, l.p, RelayProtocol)
	cancel()
	if err != nil {
		n.log.Debug("cannot open relay stream", "box", n.label(l.p), "peer", l.p, "err", err)
		n.m.dropped.WithLabelValues(dropUnreachable).Inc()
		return
	}
	defer s.Close()
	w := msgio.NewVarintWriter(s)
	for {
		select {
		case <-l.quit:
			return
		case b := <-l.q:
			s.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := w.WriteMsg(b); err != nil {
				n.log.Debug("relay stream failed", "box", n.label(l.p), "err", err)
				s.Reset()
				return
			}
		}
	}
}

// dropLink forgets l and what was pending on it: a Box that fails mid-signal
// gets nothing more, and its answers are no longer awaited.
func (n *Node) dropLink(l *link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.links[l.p] == l {
		delete(n.links, l.p)
	}
	l.stop()
	n.forgetBoxLocked(l.p)
	if !n.isFriend(l.p) {
		n.neg[negKey{box: l.p}] = time.Now().Add(n.cfg.NegativeTTL)
	}
}

// forgetBoxLocked drops the pending offers sent to p and what p said about
// its rooms.
func (n *Node) forgetBoxLocked(p peer.ID) {
	for k, v := range n.pending {
		if v.box == p {
			delete(n.pending, k)
		}
	}
	for key, boxes := range n.remote {
		if _, ok := boxes[p]; ok {
			delete(boxes, p)
			if len(boxes) == 0 {
				delete(n.remote, key)
			}
		}
	}
}

// handleStream reads relay messages from another Box.
func (n *Node) handleStream(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !n.allowed(p) {
		n.m.refused.Inc()
		s.Reset()
		return
	}
	r := msgio.NewVarintReaderSize(s, MaxMessageBytes)
	var m msg
	for {
		b, err := r.ReadMsg()
		if err != nil {
			s.Reset()
			return
		}
		if err := m.decode(b); err != nil {
			n.m.dropped.WithLabelValues(dropMalformed).Inc()
			n.log.Info("malformed relay message; closing the stream", "box", n.label(p), "peer", p, "err", err)
			r.ReleaseMsg(b)
			s.Reset()
			return
		}
		n.dispatch(p, &m)
		r.ReleaseMsg(b)
		m = msg{}
	}
}

func (n *Node) dispatch(p peer.ID, m *msg) {
	friend := n.isFriend(p)
	switch m.kind {
	case kindOffers:
		n.takeOffers(p, m)
	case kindAnswer:
		n.takeAnswer(p, m)
	case kindNack:
		n.takeNack(p, m)
	case kindWant, kindHave:
		if !friend { // strangers never learn or tell about rooms
			n.m.dropped.WithLabelValues(dropNotFriend).Inc()
			return
		}
		n.takeInterest(p, m)
	}
}

// takeOffers gives the offers of a remote browser to local peers, within the
// sender's limits; their answers go back through an answerRoute.
func (n *Node) takeOffers(p peer.ID, m *msg) {
	now := time.Now()
	if !n.lim.allow(n.friend(p), p, &m.infoHash, len(m.offers), now) {
		n.m.dropped.WithLabelValues(dropRateLimited).Add(float64(len(m.offers)))
		return
	}
	back := &answerRoute{n: n, box: p, offerer: m.from}
	got := n.tr.RemoteOffers(&m.infoHash, &m.from, m.offers, back)
	n.m.offers.WithLabelValues("in", n.label(p)).Add(float64(got))
	if got == 0 {
		n.send(p, &msg{kind: kindNack, infoHash: m.infoHash, from: m.from})
	}
}

// answerRoute is the tracker Member for an offerer on another Box: a local
// peer's answer goes back to the Box the offer came from.
type answerRoute struct {
	n       *Node
	box     peer.ID
	offerer wire.Hash
}

func (r *answerRoute) DeliverOffer(*wire.Hash, *wire.Hash, *wire.Hash, []byte) bool { return false }

func (r *answerRoute) DeliverAnswer(infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	ok := r.n.send(r.box, &msg{kind: kindAnswer, infoHash: *infoHash, from: *from, to: r.offerer, offerID: *offerID, sdp: sdp})
	if ok {
		r.n.m.answers.WithLabelValues("out", r.n.label(r.box)).Inc()
	}
	return ok
}

// takeAnswer delivers an answer only if this Box relayed that offer to p
// and it is still awaited.
func (n *Node) takeAnswer(p peer.ID, m *msg) {
	k := pendKey{infoHash: m.infoHash, offerer: m.to, offerID: m.offerID}
	n.mu.Lock()
	pd, ok := n.pending[k]
	if ok && pd.box == p {
		delete(n.pending, k)
	}
	n.mu.Unlock()
	switch {
	case !ok || pd.box != p:
		n.m.dropped.WithLabelValues(dropUnsolicited).Inc()
		n.log.Debug("unsolicited answer dropped", "box", n.label(p))
	case time.Now().After(pd.expires):
		n.m.dropped.WithLabelValues(dropExpired).Inc()
	case n.tr.RemoteAnswer(&m.infoHash, &m.from, &m.to, &m.offerID, m.sdp):
		n.m.answers.WithLabelValues("in", n.label(p)).Inc()
	}
}

// takeNack notes that p has no peers in a room any more.
func (n *Node) takeNack(p peer.ID, m *msg) {
	key := KeyOf(&m.infoHash)
	n.mu.Lock()
	defer n.mu.Unlock()
	if in := n.remote[key][p]; in != nil {
		in.peers = 0
	}
	n.neg[negKey{box: p, key: key}] = time.Now().Add(n.cfg.NegativeTTL)
}
