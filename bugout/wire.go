package bugout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxsignal/boxsignal/bugout/internal/btwire"
	"golang.org/x/time/rate"
)

// boChannelID is the id we advertise for bo_channel in our BEP 10 m;
// remotes send bo_channel messages to us with it.
const boChannelID = 1

// wire is one BitTorrent peer-wire connection (§3.3).
type wire struct {
	p       *Peer
	rw      io.ReadWriteCloser
	out     chan []byte
	packets *rate.Limiter

	stopOnce  sync.Once
	stop      chan struct{}
	flush     bool // set before stop closes: write what is queued first
	writeDone chan struct{}
	closeOnce sync.Once

	// Guarded by p.mu.
	ready    bool     // handshake done; remoteID is valid
	remoteID [20]byte // remote peer id
	boID     byte     // remote's bo_channel id; 0: none, send nothing
	seen     bool     // wireseen emitted
}

// AddWire runs the BitTorrent wire on rw (any byte stream: TCP, a pipe, a
// WebRTC data channel) until it ends, and returns then; rw is closed on
// return. It sends the handshake at once, checks the remote's, exchanges
// BEP 10 handshakes and carries bo_channel payloads both ways. Cancel ctx
// to drop the wire. It returns nil when the remote closes the stream or the
// Peer closes it; ErrHandshakeTimeout, ErrWrongInfoHash, ErrSelfConnection,
// ErrDuplicateWire or a read error otherwise.
func (p *Peer) AddWire(ctx context.Context, rw io.ReadWriteCloser) error {
	w := &wire{
		p:         p,
		rw:        rw,
		out:       make(chan []byte, p.cfg.WireQueue),
		packets:   rate.NewLimiter(rate.Limit(p.cfg.WirePacketRate), p.cfg.WirePacketBurst),
		stop:      make(chan struct{}),
		writeDone: make(chan struct{}),
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		rw.Close()
		return ErrClosed
	}
	p.wires[w] = struct{}{}
	p.wireWG.Add(1)
	p.mu.Unlock()
	defer p.wireWG.Done()

	go w.writeLoop()
	stopAfter := context.AfterFunc(ctx, w.closeStream)
	err := w.run()
	stopAfter()
	w.shutdown(false)
	<-w.writeDone
	w.closeStream()

	p.mu.Lock()
	delete(p.wires, w)
	if w.seen {
		p.emit(Event{Type: EventWireLeft, Wires: p.readyWires()})
	}
	closing := p.closing
	p.mu.Unlock()
	if closing || ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	p.log.Debug("wire closed", "wire", w.name(), "err", err)
	return err
}

// run speaks the wire protocol until the stream fails.
func (w *wire) run() error {
	p := w.p
	w.send(btwire.Handshake{Reserved: btwire.ReservedExtended, InfoHash: p.infoHash, PeerID: p.peerID}.Bytes())
	r := btwire.NewReader(w.rw, p.cfg.MaxPacketBytes+2)
	var timedOut atomic.Bool
	timer := time.AfterFunc(p.cfg.HandshakeTimeout, func() {
		timedOut.Store(true)
		w.closeStream()
	})
	h, err := r.ReadHandshake()
	timer.Stop()
	if timedOut.Load() {
		return fmt.Errorf("%w after %v", ErrHandshakeTimeout, p.cfg.HandshakeTimeout)
	}
	if err != nil {
		return err
	}
	if err := w.register(h); err != nil {
		return err
	}
	ext, err := btwire.ExtHandshake{
		M:  map[string]int64{"bo_channel": boChannelID},
		ID: []byte(p.identifier),
		PK: []byte(p.id.pk),
		EK: []byte(p.box.ek),
	}.Marshal()
	if err != nil {
		return err
	}
	w.send(btwire.AppendExtended(nil, btwire.ExtHandshakeID, ext))
	w.send(btwire.AppendMessage(nil, btwire.Bitfield, []byte{0x80})) // one piece, a seeder
	for {
		m, err := r.ReadMessage()
		var tooLarge *btwire.TooLargeError
		switch {
		case errors.As(err, &tooLarge):
			p.refused(w, fmt.Errorf("%w: wire message: %v", ErrTooLarge, err))
			continue
		case errors.Is(err, btwire.ErrEmptyExtended):
			p.refused(w, fmt.Errorf("%w: %v", ErrMalformed, err))
			continue
		case err != nil:
			return err
		}
		if m.KeepAlive || m.ID != btwire.Extended {
			// bitfield, have, have-all, choke, unchoke, …: nothing for a
			// seeder to do.
			continue
		}
		switch m.ExtID {
		case btwire.ExtHandshakeID:
			w.extHandshake(m.Payload)
		case boChannelID:
			p.handlePayload(w, m.Payload)
		}
	}
}

// register checks the remote handshake and marks the wire ready.
func (w *wire) register(h btwire.Handshake) error {
	p := w.p
	if h.InfoHash != p.infoHash {
		return fmt.Errorf("%w: %x", ErrWrongInfoHash, h.InfoHash)
	}
	if h.PeerID == p.peerID {
		return ErrSelfConnection
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for o := range p.wires {
		if o.ready && o.remoteID == h.PeerID {
			return fmt.Errorf("%w: %q", ErrDuplicateWire, h.PeerID[:])
		}
	}
	w.ready, w.remoteID = true, h.PeerID
	if !h.SupportsExtended() {
		p.log.Debug("remote lacks the BEP 10 bit; its extended messages may never come", "wire", w.name())
	}
	return nil
}

// extHandshake applies a remote BEP 10 handshake: its bo_channel id, and
// its unsigned pk/ek as a peer-table hint (B4, see sawPeer).
func (w *wire) extHandshake(b []byte) {
	p := w.p
	h, err := btwire.ParseExtHandshake(b)
	if err != nil {
		p.refused(w, fmt.Errorf("%w: %v", ErrMalformed, err))
		return
	}
	id := h.M["bo_channel"]
	var ping bool
	p.mu.Lock()
	w.boID = byte(id)
	if id != 0 {
		if !w.seen {
			w.seen = true
			p.emit(Event{Type: EventWireSeen, Wires: p.readyWires()})
		}
		pub, err := parsePublicKey(h.PK)
		var ek *[32]byte
		if err == nil {
			ek, err = parseBoxKey(h.EK)
		}
		if err != nil {
			err = fmt.Errorf("%w: extended handshake: %v", ErrBadKey, err)
		} else {
			ping, err = p.sawPeer(pub, ek, false, p.now())
		}
		if err != nil {
			p.mu.Unlock()
			p.refused(w, err)
			return
		}
	}
	p.mu.Unlock()
	if ping {
		if err := p.Ping(); err != nil {
			p.log.Debug("ping back", "err", err)
		}
	}
}

// readyWires counts wires speaking bo_channel. Call with p.mu held.
func (p *Peer) readyWires() int {
	n := 0
	for w := range p.wires {
		if w.boID != 0 {
			n++
		}
	}
	return n
}

func (w *wire) name() string {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !w.ready {
		return "(handshaking)"
	}
	return string(w.remoteID[:])
}

// send queues a framed message without blocking; a full queue drops it.
func (w *wire) send(b []byte) {
	select {
	case w.out <- b:
	default:
		w.p.mu.Lock()
		w.p.stats.QueueDropped++
		w.p.mu.Unlock()
	}
}

// sendExtended queues a bo_channel payload. Call with p.mu held.
func (w *wire) sendExtended(extID byte, payload []byte) {
	select {
	case w.out <- btwire.AppendExtended(nil, extID, payload):
	default:
		w.p.stats.QueueDropped++
	}
}

// writeLoop is the wire's only writer. It sends keep-alives when idle.
func (w *wire) writeLoop() {
	defer close(w.writeDone)
	idle := time.NewTimer(w.p.cfg.KeepAlive)
	defer idle.Stop()
	write := func(b []byte) bool {
		if _, err := w.rw.Write(b); err != nil {
			w.closeStream()
			return false
		}
		idle.Reset(w.p.cfg.KeepAlive)
		return true
	}
	for {
		select {
		case b := <-w.out:
			if !write(b) {
				return
			}
		case <-idle.C:
			if !write(btwire.KeepAlive()) {
				return
			}
		case <-w.stop:
			if w.flush {
				w.drain(write)
				// Half-close where the stream can, and let the reader run to
				// the remote's EOF: closing a TCP socket with unread input
				// sends RST, and the remote may drop our leave unread.
				if cw, ok := w.rw.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
					return
				}
			}
			w.closeStream()
			return
		}
	}
}

// drain writes what is queued.
func (w *wire) drain(write func([]byte) bool) {
	for {
		select {
		case b := <-w.out:
			if !write(b) {
				return
			}
		default:
			return
		}
	}
}

// shutdown stops the writer (after writing what is queued, if flush) and
// so closes the stream.
func (w *wire) shutdown(flush bool) {
	w.stopOnce.Do(func() {
		w.flush = flush
		close(w.stop)
	})
}

func (w *wire) closeStream() {
	w.closeOnce.Do(func() { w.rw.Close() })
}

// HasWire reports whether a wire whose remote sent peerID in its
// BitTorrent handshake is up. A transport uses it to skip a second
// connection to a peer it is already wired to (§3.1 "Duplicates").
func (p *Peer) HasWire(peerID [20]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for w := range p.wires {
		if w.ready && w.remoteID == peerID {
			return true
		}
	}
	return false
}
