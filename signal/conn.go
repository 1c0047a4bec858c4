package signal

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// conn is one client WebSocket. It is the Member for every peer it
// announced. Its handler runs on an event-loop goroutine, one message at a
// time; deliveries from other connections arrive concurrently.
type conn struct {
	srv *Server
	ws  *websocket.Conn
	ip  netip.Addr

	lastActive atomic.Int64 // unix seconds of the last announce or answer
	gone       bool         // closed and cleaned up; guarded by srv.mu

	mu     sync.Mutex // guards the fields below; taken after a swarm lock, never before
	joined []joined   // the peers this connection holds, for cleanup on close
	tokens float64    // rate limiter
	refill int64      // unix nanoseconds of the last refill
	closed bool
}

type joined struct{ infoHash, peerID wire.Hash }

var errClosed = errors.New("signal: connection closed")

// remember records a peer this connection now holds; it fails if the
// connection is closed or holds too many.
func (c *conn) remember(infoHash, peerID *wire.Hash) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	if len(c.joined) >= c.srv.cfg.MaxSwarmsPerConn {
		return errTooManySwarms
	}
	c.joined = append(c.joined, joined{*infoHash, *peerID})
	return nil
}

func (c *conn) forget(infoHash, peerID *wire.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, j := range c.joined {
		if j.infoHash == *infoHash && j.peerID == *peerID {
			last := len(c.joined) - 1
			c.joined[i] = c.joined[last]
			c.joined = c.joined[:last]
			if last == 0 {
				c.joined = nil
			}
			return
		}
	}
}

// allow takes one token from the connection's bucket.
func (c *conn) allow(now time.Time) bool {
	rate := c.srv.cfg.AnnounceRate
	if rate < 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := now.UnixNano()
	burst := float64(c.srv.cfg.AnnounceBurst)
	if c.refill == 0 {
		c.tokens = burst
	} else {
		c.tokens = min(burst, c.tokens+rate*float64(t-c.refill)/1e9)
	}
	c.refill = t
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// leave removes every peer of the connection from its swarms. It runs once,
// when the socket is gone.
func (c *conn) leave() {
	c.mu.Lock()
	c.closed = true
	joined := c.joined
	c.joined = nil
	c.mu.Unlock()
	s := c.srv
	for i := range joined {
		j := &joined[i]
		sw := s.table.get(&j.infoHash)
		if sw == nil {
			continue
		}
		if p := sw.peers[j.peerID]; p != nil && p.m == Member(c) {
			sw.remove(p)
			s.m.peers.Add(-1)
		}
		if s.table.release(sw) {
			s.m.swarms.Add(-1)
		}
	}
}

// DeliverOffer implements Member.
func (c *conn) DeliverOffer(infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	b := getBuf()
	defer putBuf(b)
	*b = wire.AppendOffer((*b)[:0], infoHash, from, offerID, sdp)
	return c.write(*b)
}

// DeliverAnswer implements Member.
func (c *conn) DeliverAnswer(infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	b := getBuf()
	defer putBuf(b)
	*b = wire.AppendAnswer((*b)[:0], infoHash, from, offerID, sdp)
	return c.write(*b)
}

// write sends one text message. It does not block: what the kernel does not
// take is queued by the event loop, which closes a connection whose queue
// passes Config.WriteBufferBytes.
func (c *conn) write(msg []byte) bool {
	if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return false
	}
	c.srv.m.bytesOut.Add(float64(len(msg)))
	return true
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufs.Put(b)
	}
}
