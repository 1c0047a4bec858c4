package signal

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/gobwas/ws"
)

// conn is one client WebSocket. It is the Member for every peer it
// announced. One goroutine at a time reads it and runs its handler (its
// event loop, or its own reader when it is a stream); deliveries from other
// connections arrive concurrently and are queued in out.
//
// Frames are not written one by one: a handler running on an event loop
// queues them, and the loop writes each connection it queued to once, at the
// end of its turn (one write for every frame a connection got in that
// turn). Deliveries from elsewhere (the federation, the sweeper) are written
// at once.
type conn struct {
	srv *Server
	ip  netip.Addr
	// The transport: a socket on an event loop (lp, fd), or a stream (nc)
	// that a goroutine reads and another writes (TLS, or no event loop on
	// this system).
	lp *loop
	fd int
	nc net.Conn

	lastActive atomic.Int64 // unix seconds of the last announce or answer
	gone       bool         // closed and cleaned up; guarded by srv.mu

	mu     sync.Mutex // guards the fields below; taken after a swarm lock, never before
	joined []joined   // the peers this connection holds, for cleanup on close
	tokens float64    // rate limiter
	refill int64      // unix nanoseconds of the last refill
	closed bool

	// Read side, used only by the goroutine reading the connection.
	partial []byte    // the start of a frame not complete yet (event loop)
	msg     []byte    // a fragmented message so far
	msgOp   ws.OpCode // its opcode; ws.OpContinuation (0) when no message is fragmented

	wmu      sync.Mutex // guards the fields below
	out      *[]byte    // frames queued; (*out)[sent:] is not written yet
	sent     int
	dirty    bool // a loop will flush it at the end of its turn
	waitOut  bool // the socket's buffer is full: the loop waits for it to drain
	closing  bool // no more frames (a close frame may be the last queued)
	fdClosed bool // the socket is closed (fd may be someone else's now)
	writing  bool // a stream's writer goroutine runs
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

// DeliverOffer implements Member. It writes at once: its callers are not
// event loops.
func (c *conn) DeliverOffer(infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	return c.deliverOffer(nil, infoHash, from, offerID, sdp)
}

// DeliverAnswer implements Member.
func (c *conn) DeliverAnswer(infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	return c.deliverAnswer(nil, infoHash, from, offerID, sdp)
}

// deliverOffer queues an offer; on is the event loop running the caller,
// which writes it at the end of its turn, or nil to write it at once.
func (c *conn) deliverOffer(on *loop, infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	b, start, ok := c.begin()
	if !ok {
		return false
	}
	return c.end(on, wire.AppendOffer(b, infoHash, from, offerID, sdp), start, ws.OpText)
}

func (c *conn) deliverAnswer(on *loop, infoHash, from, offerID *wire.Hash, sdp []byte) bool {
	b, start, ok := c.begin()
	if !ok {
		return false
	}
	return c.end(on, wire.AppendAnswer(b, infoHash, from, offerID, sdp), start, ws.OpText)
}

// begin locks the write side and returns the queue with room for a frame
// header at its end, where the frame starts; the caller appends the payload
// and calls end. It fails if the connection is closing.
func (c *conn) begin() (b []byte, start int, ok bool) {
	c.wmu.Lock()
	if c.closing {
		c.wmu.Unlock()
		return nil, 0, false
	}
	if c.out == nil {
		c.out = getBuf()
	}
	b = *c.out
	return append(b, make([]byte, frameReserve)...), len(b), true
}

// end completes the frame that begin started, queues it and unlocks the
// write side. A connection whose queue passes Config.WriteBufferBytes once
// the kernel has taken what it can is closed (a slow reader).
func (c *conn) end(on *loop, b []byte, start int, op ws.OpCode) bool {
	n := len(b) - start - frameReserve
	b = putHeader(b, start, op)
	*c.out = b
	if len(b)-c.sent > c.srv.cfg.WriteBufferBytes {
		c.flushLocked()
		if c.out != nil && len(*c.out)-c.sent > c.srv.cfg.WriteBufferBytes {
			c.abortLocked()
			c.wmu.Unlock()
			c.srv.m.closes.WithLabelValues(closeSlowReader).Inc()
			return false
		}
	}
	switch {
	case c.waitOut, c.dirty:
		// Written when the socket drains, or at the end of a turn.
	case on == nil:
		c.flushLocked()
	default:
		c.dirty = true
		on.dirty = append(on.dirty, c)
	}
	c.wmu.Unlock()
	if op == ws.OpText {
		c.srv.m.bytesOut.Add(float64(n))
	}
	return true
}

// flush writes what is queued; the event loop calls it at the end of a turn.
func (c *conn) flush() {
	c.wmu.Lock()
	c.flushLocked()
	c.wmu.Unlock()
}

// flushLocked hands the queue to the kernel, or to the stream's writer.
func (c *conn) flushLocked() {
	c.dirty = false
	if c.out == nil || c.fdClosed {
		return
	}
	if c.nc != nil {
		if !c.writing && len(*c.out) > 0 {
			c.writing = true
			c.srv.streams.Add(1)
			go c.writeStream()
		}
		return
	}
	if c.waitOut {
		return // the loop writes when the socket can take more
	}
	b := *c.out
	for c.sent < len(b) {
		n, err := sendNoSignal(c.fd, b[c.sent:])
		if n > 0 {
			c.sent += n
		}
		switch {
		case err == nil && c.sent < len(b):
			// A short write: the socket's buffer is full.
			c.waitWritable()
			return
		case err == nil:
		case errors.Is(err, errInterrupted):
		case errors.Is(err, errWouldBlock):
			c.waitWritable()
			return
		default:
			// The socket is broken; its reader sees it too and closes it.
			c.closing = true
			c.dropOutLocked()
			return
		}
	}
	c.dropOutLocked()
}

// waitWritable makes the loop flush c when its socket can take more (once
// the connection is on a loop: attach watches for it then).
func (c *conn) waitWritable() {
	c.waitOut = true
	if c.lp != nil {
		c.lp.watchWritable(c, true)
	}
}

// writable is the loop's call when a socket it waited for can take more.
func (c *conn) writable() {
	c.wmu.Lock()
	if c.waitOut && !c.fdClosed {
		c.waitOut = false
		c.lp.watchWritable(c, false)
		c.flushLocked()
	}
	c.wmu.Unlock()
}

// dropOutLocked returns the queue's buffer to the pool: an idle connection
// holds none.
func (c *conn) dropOutLocked() {
	if c.out != nil {
		putBuf(c.out)
		c.out, c.sent = nil, 0
	}
}

// writeStream writes a stream's queue until it is empty; one runs per
// stream at most.
func (c *conn) writeStream() {
	defer c.srv.streams.Done()
	spare := getBuf()
	defer func() { putBuf(spare) }()
	for {
		c.wmu.Lock()
		if c.out == nil || len(*c.out) == 0 || c.fdClosed {
			c.writing = false
			c.wmu.Unlock()
			return
		}
		b := c.out
		c.out, spare = spare, b
		c.wmu.Unlock()
		_, err := c.nc.Write(*b)
		*b = (*b)[:0]
		if err != nil {
			c.wmu.Lock()
			c.closing = true
			c.writing = false
			c.dropOutLocked()
			c.wmu.Unlock()
			closeStream(c.nc) // its reader returns and cleans up
			return
		}
	}
}

// abortLocked drops what is queued and has the connection closed by the
// goroutine that reads it.
func (c *conn) abortLocked() {
	c.closing = true
	c.dropOutLocked()
	switch {
	case c.fdClosed:
	case c.nc != nil:
		closeStream(c.nc) // its reader returns and cleans up
	default:
		// The loop sees the socket shut down and closes it.
		shutdownSocket(c.fd)
	}
}

// sendClose queues a close frame and refuses every frame after it; on is
// the event loop running the caller, or nil to write it at once. Nothing
// happens if the connection is closing already.
func (c *conn) sendClose(on *loop, code ws.StatusCode, reason string) {
	b, start, ok := c.begin()
	if !ok {
		return
	}
	if !code.Empty() {
		b = append(b, ws.NewCloseFrameBody(code, reason)...)
	}
	c.closing = true
	c.end(on, b, start, ws.OpClose)
}

// close closes the connection from any goroutine: it stops taking frames and
// has the goroutine reading it close the socket and clean up.
func (c *conn) close() {
	c.wmu.Lock()
	if !c.fdClosed {
		c.closing = true
		if c.nc != nil {
			closeStream(c.nc)
		} else {
			shutdownSocket(c.fd)
		}
	}
	c.wmu.Unlock()
}

// closeStream closes a stream's connection without a TLS close_notify, which
// could block: its reader and writer return.
func closeStream(nc net.Conn) {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn()
	}
	nc.Close()
}

func (c *conn) isClosing() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closing
}

// consume serves the complete frames at the start of data; it returns how
// many bytes it used, and whether the connection is to be closed (after
// what is queued has been written). It unmasks data in place; on is the
// event loop running it, or nil; fr is the reader's frameReader.
func (c *conn) consume(on *loop, fr *frameReader, data []byte) (used int, closing bool) {
	limit := int64(c.srv.cfg.MaxMessageBytes)
	for {
		h, size, err := fr.header(data[used:])
		if err == errIncomplete {
			return used, false
		}
		if err == nil {
			state := ws.StateServerSide // client frames must be masked
			if c.msgOp != ws.OpContinuation {
				state = state.Set(ws.StateFragmented)
			}
			err = ws.CheckHeader(h, state)
		}
		switch {
		case err == ws.ErrProtocolControlPayloadOverflow, err == nil && (h.Length > limit || h.Length+int64(len(c.msg)) > limit):
			c.sendClose(on, ws.StatusMessageTooBig, "message too large")
			return used, true
		case err != nil:
			return used, true // a protocol error: closed without a close frame
		}
		end := size + int(h.Length)
		if len(data)-used < end {
			return used, false
		}
		p := data[used+size : used+end]
		ws.Cipher(p, h.Mask, 0)
		used += end
		if c.frame(on, h, p) {
			return used, true
		}
	}
}

// frame serves one frame and reports whether the connection is to be
// closed.
func (c *conn) frame(on *loop, h ws.Header, p []byte) bool {
	switch h.OpCode {
	case ws.OpText, ws.OpBinary:
		if !h.Fin {
			c.msg, c.msgOp = append([]byte(nil), p...), h.OpCode
			return false
		}
		return c.message(on, h.OpCode, p)
	case ws.OpContinuation:
		c.msg = append(c.msg, p...)
		if !h.Fin {
			return false
		}
		op, m := c.msgOp, c.msg
		c.msg, c.msgOp = nil, ws.OpContinuation
		return c.message(on, op, m)
	case ws.OpPing:
		if b, start, ok := c.begin(); ok {
			c.end(on, append(b, p...), start, ws.OpPong)
		}
		return false
	case ws.OpPong:
		return false
	}
	// Close: answer with the same code (RFC 6455 §5.5.1), then close.
	if len(p) == 0 {
		c.sendClose(on, 0, "")
		return true
	}
	code, reason := ws.ParseCloseFrameData(p)
	if err := checkCloseFrame(code, reason); err != nil {
		c.sendClose(on, ws.StatusProtocolError, err.Error())
		return true
	}
	c.sendClose(on, code, reason)
	return true
}

// message serves one complete message. Binary messages are served like
// text ones, as bittorrent-tracker does; an empty message gets no reply.
func (c *conn) message(on *loop, op ws.OpCode, p []byte) bool {
	if len(p) == 0 {
		return false
	}
	if op == ws.OpText && !utf8.Valid(p) {
		c.sendClose(on, ws.StatusProtocolError, "invalid UTF-8 bytes")
		return true
	}
	c.handle(on, p)
	return c.isClosing()
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		bufs.Put(b)
	}
}
