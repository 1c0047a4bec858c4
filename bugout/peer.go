package bugout

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mr-tron/base58"
)

// Peer is one Bugout instance in one room. It owns the peer table, the seen
// cache, RPC state and the wires handed to AddWire. All methods are safe for
// concurrent use.
type Peer struct {
	cfg        Config
	log        *slog.Logger
	id         *Identity
	box        *boxKey
	identifier string
	infoHash   [20]byte
	peerID     [20]byte
	opener     opener

	ctx    context.Context // cancelled by Close: stops the heartbeat and handlers
	cancel context.CancelFunc
	wg     sync.WaitGroup // heartbeat and RPC handlers
	wireWG sync.WaitGroup // AddWire calls
	rpcSem chan struct{}

	randMu    sync.Mutex // cfg.Rand need not be safe for concurrent use
	closeOnce sync.Once

	mu       sync.Mutex
	closing  bool // Close has begun: no new wires, nothing more sent
	closed   bool // events channel closed
	peers    map[Address]*peerEntry
	seen     *expiringSet[seenKey]
	nonces   *expiringSet[nonceKey]
	wires    map[*wire]struct{}
	pending  map[[nonceLen]byte]*pendingCall
	handlers map[string]handlerEntry
	events   chan Event
	stats    Stats
}

// nonceKey identifies a signed packet for replay detection: sender and n.
type nonceKey struct {
	from Address
	n    string
}

// Stats counts what a Peer dropped. Safe to copy.
type Stats struct {
	Rejected      map[Reason]uint64 // refused payloads, by reason
	EventsDropped uint64            // events lost to a full Events channel
	QueueDropped  uint64            // messages lost to a full wire queue
}

// New makes a Peer for cfg.Identifier. It starts the heartbeat; it opens no
// connection: hand it byte streams with AddWire.
func New(cfg Config) (*Peer, error) {
	cfg.setDefaults()
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	id := cfg.Identity
	if id == nil {
		var err error
		if id, err = NewIdentity(cfg.Rand); err != nil {
			return nil, err
		}
	}
	identifier := cfg.Identifier
	if identifier == "" {
		identifier = string(id.addr)
	}
	ih, err := InfoHash(identifier, cfg.Private)
	if err != nil {
		return nil, err
	}
	bk, err := newBoxKey(cfg.Rand)
	if err != nil {
		return nil, err
	}
	p := &Peer{
		cfg:        cfg,
		id:         id,
		box:        bk,
		identifier: identifier,
		infoHash:   ih,
		rpcSem:     make(chan struct{}, cfg.MaxConcurrentRPC),
		peers:      make(map[Address]*peerEntry),
		seen:       newExpiringSet[seenKey](2*cfg.Timeout+cfg.MaxClockSkew, 1<<17),
		nonces:     newExpiringSet[nonceKey](cfg.Timeout+cfg.MaxClockSkew, 1<<17),
		wires:      make(map[*wire]struct{}),
		pending:    make(map[[nonceLen]byte]*pendingCall),
		handlers:   make(map[string]handlerEntry),
		events:     make(chan Event, cfg.EventBuffer),
		stats:      Stats{Rejected: make(map[Reason]uint64)},
	}
	p.peerID = newPeerID(p.random(12))
	p.opener = opener{box: bk, identifier: identifier, timeout: cfg.Timeout, skew: cfg.MaxClockSkew, maxBytes: cfg.MaxPacketBytes}
	p.log = cfg.Logger.With("component", "bugout", "address", string(id.addr))
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.Register("ping", "Respond to ping with the args and pong: true.", pingHandler)
	p.wg.Add(1)
	go p.heartbeat()
	p.log.Info("bugout peer started", "room", truncate([]byte(identifier)), "info_hash", fmt.Sprintf("%x", ih))
	return p, nil
}

// newPeerID makes an Azureus-style peer id "-GB0001-" + 12 characters.
func newPeerID(r []byte) [20]byte {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var id [20]byte
	copy(id[:], "-GB0001-")
	for i, b := range r[:12] {
		id[8+i] = alphabet[int(b)%len(alphabet)]
	}
	return id
}

// Address is this peer's address.
func (p *Peer) Address() Address { return p.id.addr }

// Identifier is the room identifier.
func (p *Peer) Identifier() string { return p.identifier }

// InfoHash is the room's infoHash, for the tracker and the handshake.
func (p *Peer) InfoHash() [20]byte { return p.infoHash }

// PeerID is the 20-byte BitTorrent peer id used on every wire; announce the
// same id to trackers.
func (p *Peer) PeerID() [20]byte { return p.peerID }

// EK is this instance's base58 ephemeral box key.
func (p *Peer) EK() string { return p.box.ek }

// Events delivers what happens in the room, in order. It is closed by
// Close. When its buffer is full, events are dropped (see Stats), so read it.
func (p *Peer) Events() <-chan Event { return p.events }

// String shows the address and room only.
func (p *Peer) String() string {
	return fmt.Sprintf("bugout.Peer(%s in %q)", p.id.addr, truncate([]byte(p.identifier)))
}

// Format prints String for every verb, so no key is ever printed.
func (p *Peer) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// Stats returns a copy of the drop counters.
func (p *Peer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Rejected = make(map[Reason]uint64, len(p.stats.Rejected))
	for k, v := range p.stats.Rejected {
		s.Rejected[k] = v
	}
	return s
}

func (p *Peer) random(n int) []byte {
	b := make([]byte, n)
	p.randMu.Lock()
	defer p.randMu.Unlock()
	if _, err := io.ReadFull(p.cfg.Rand, b); err != nil {
		// crypto/rand does not fail; a test reader that runs dry is a bug.
		panic(fmt.Sprintf("bugout: rand: %v", err))
	}
	return b
}

func (p *Peer) now() time.Time { return p.cfg.Clock() }

// emit queues an event without blocking. Call with p.mu held.
func (p *Peer) emit(e Event) {
	if p.closed {
		return
	}
	select {
	case p.events <- e:
	default:
		p.stats.EventsDropped++
	}
}

// newPacket builds a signed packet with fresh t and n and records it as our
// own: its bytes as seen, its nonce as used.
func (p *Peer) newPacket(params map[string]any) ([]byte, error) {
	n := p.random(nonceLen)
	now := p.now()
	b, err := makePacket(p.id, p.box.ek, p.identifier, now.UnixMilli(), n, params)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.nonces.add(nonceKey{p.id.addr, string(n)}, now)
	p.mu.Unlock()
	return b, nil
}

// encryptTo wraps a signed packet for the box key ek with a fresh nonce.
func (p *Peer) encryptTo(ek *[32]byte, signed []byte) ([]byte, error) {
	nonce := [24]byte(p.random(24))
	return encryptPacket(p.box, ek, &nonce, signed)
}

// broadcast records payload as seen and queues it on every bo_channel wire
// except skip. It refuses payloads over MaxPacketBytes.
func (p *Peer) broadcast(payload []byte, skip *wire) error {
	if len(payload) > p.cfg.MaxPacketBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), p.cfg.MaxPacketBytes)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.seen.add(keyOf(payload), p.now())
	for w := range p.wires {
		if w != skip && w.boID != 0 {
			w.sendExtended(w.boID, payload)
		}
	}
	return nil
}

// Ping broadcasts a signed ping.
func (p *Peer) Ping() error {
	b, err := p.newPacket(map[string]any{"y": typePing})
	if err != nil {
		return err
	}
	return p.broadcast(b, nil)
}

// Send broadcasts msg, JSON encoded, as a plaintext signed message to the
// whole room. Bugout peers drop falsy JSON, so Send refuses it.
func (p *Peer) Send(msg any) error {
	b, err := p.messagePacket(msg)
	if err != nil {
		return err
	}
	return p.broadcast(b, nil)
}

// SendTo sends msg to one peer, encrypted to its box key. It fails with
// ErrUnknownPeer if the peer is not in the table.
func (p *Peer) SendTo(to Address, msg any) error {
	ek, err := p.peerKey(to)
	if err != nil {
		return err
	}
	b, err := p.messagePacket(msg)
	if err != nil {
		return err
	}
	if b, err = p.encryptTo(ek, b); err != nil {
		return err
	}
	return p.broadcast(b, nil)
}

func (p *Peer) messagePacket(msg any) ([]byte, error) {
	v, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("bugout: encode message: %w", err)
	}
	if falsy(v) {
		return nil, ErrFalsyMessage
	}
	return p.newPacket(map[string]any{"y": typeMessage, "v": v})
}

// peerKey is the box key of a known peer.
func (p *Peer) peerKey(addr Address) (*[32]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.peers[addr]
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, addr)
	}
	ek := e.ek
	return &ek, nil
}

// heartbeat pings every Heartbeat and expires silent peers.
func (p *Peer) heartbeat() {
	defer p.wg.Done()
	every := p.cfg.Heartbeat
	if every <= 0 {
		every = 15 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		p.expirePeers(p.now())
		p.mu.Unlock()
		if p.cfg.Heartbeat > 0 {
			if err := p.Ping(); err != nil {
				p.log.Debug("heartbeat ping", "err", err)
			}
		}
	}
}

// Close broadcasts a signed leave, lets the wires flush it for up to
// CloseTimeout, closes every wire, stops the heartbeat and waits for RPC
// handlers (their contexts are cancelled). Pending Calls fail with
// ErrClosed. The Events channel is closed last. Close is idempotent;
// concurrent calls wait for the first.
func (p *Peer) Close() error {
	p.closeOnce.Do(p.close)
	return nil
}

func (p *Peer) close() {
	if leave, err := p.newPacket(map[string]any{"y": typeLeave}); err == nil {
		_ = p.broadcast(leave, nil)
	}
	p.mu.Lock()
	p.closing = true
	wires := make([]*wire, 0, len(p.wires))
	for w := range p.wires {
		wires = append(wires, w)
	}
	p.mu.Unlock()
	p.cancel()
	for _, w := range wires {
		w.shutdown(true)
	}
	done := make(chan struct{})
	go func() { p.wireWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.cfg.CloseTimeout):
		for _, w := range wires {
			w.closeStream()
		}
		<-done
	}
	p.wg.Wait()
	p.mu.Lock()
	p.closed = true
	close(p.events)
	p.mu.Unlock()
	p.log.Info("bugout peer closed")
}

func encodeKey(b []byte) string { return base58.Encode(b) }
