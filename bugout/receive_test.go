package bugout

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/bugout/internal/benc"
)

// sender builds packets as some other peer would.
type sender struct {
	id   *Identity
	box  *boxKey
	room string
	n    byte
}

func newSender(t *testing.T, seed byte, room string) *sender {
	id, _ := IdentityFromSeed(bytes.Repeat([]byte{seed}, 32))
	k, err := boxKeyFromSecret(secret32(bytes.Repeat([]byte{seed + 1}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return &sender{id: id, box: k, room: room}
}

func (s *sender) packet(t *testing.T, at time.Time, params map[string]any) []byte {
	t.Helper()
	s.n++
	b, err := makePacket(s.id, s.box.ek, s.room, at.UnixMilli(), bytes.Repeat([]byte{s.n}, 8), params)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *sender) encrypt(t *testing.T, to *[32]byte, nonce byte, signed []byte) []byte {
	t.Helper()
	n := [24]byte(bytes.Repeat([]byte{nonce}, 24))
	b, err := encryptPacket(s.box, to, &n, signed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReceiveRefusals(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	p := newTestPeer(t, "test-room", 1, func(c *Config) {
		c.Clock = func() time.Time { return now }
		c.MaxPacketBytes = 4096
	})
	m := newSender(t, 9, "test-room")
	ping := map[string]any{"y": "p"}
	forged := m.packet(t, now, ping)
	forged[len(forged)-2] ^= 1 // last signature byte
	other := newSender(t, 9, "other-room")
	stranger, _ := boxKeyFromSecret(secret32(bytes.Repeat([]byte{0x77}, 32)))

	valid := m.packet(t, now, map[string]any{"y": "m", "v": `{"a":1}`})
	rewrapped := m.encrypt(t, &p.box.public, 1, valid) // same signed packet, new outer bytes

	tests := []struct {
		name string
		in   []byte
		want error // nil: accepted (or harmlessly ignored)
	}{
		{"garbage", []byte("not bencode at all"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"list", []byte("le"), ErrMalformed},
		{"trailing bytes", append(m.packet(t, now, ping), 'x'), ErrMalformed},
		{"unsorted keys", []byte("d1:s0:1:p0:e"), ErrMalformed},
		{"p not a string", []byte("d1:pi5e1:s0:e"), ErrMalformed},
		{"short signature", []byte("d1:p2:de1:s3:abce"), ErrMalformed},
		{"inner not a dict", mustBenc(t, map[string]any{"p": "i5e", "s": make([]byte, 64)}), ErrMalformed},
		{"missing fields", mustBenc(t, map[string]any{"p": "d1:ti5ee", "s": make([]byte, 64)}), ErrMalformed},
		{"oversized", bytes.Repeat([]byte{'x'}, 4097), ErrTooLarge},
		{"forged signature", forged, ErrBadSignature},
		{"bad pk", mustBenc(t, map[string]any{"p": mustBenc(t, map[string]any{"t": 1, "i": "test-room", "pk": "0OIl", "ek": "x", "n": "12345678"}), "s": make([]byte, 64)}), ErrBadKey},
		{"wrong room", other.packet(t, now, ping), ErrWrongRoom},
		{"expired", m.packet(t, now.Add(-5*time.Minute), ping), ErrExpired},
		{"from the future", m.packet(t, now.Add(4*time.Minute), ping), ErrFromFuture},
		{"plaintext rpc", m.packet(t, now, map[string]any{"y": "r", "c": "ping", "a": "null", "rn": "12345678"}), ErrPlaintextRPC},
		{"rpc without a", m.encrypt(t, &p.box.public, 2, m.packet(t, now, map[string]any{"y": "r", "c": "ping", "rn": "12345678"})), ErrMalformed},
		{"message without v", m.packet(t, now, map[string]any{"y": "m"}), ErrMalformed},
		{"unexpected response", m.encrypt(t, &p.box.public, 3, m.packet(t, now, map[string]any{"y": "rr", "rn": "12345678", "rr": "{}"})), ErrUnexpectedResponse},
		{"bad envelope ek", mustBenc(t, map[string]any{"e": make([]byte, 40), "ek": "0OIl", "n": make([]byte, 24)}), ErrBadKey},
		{"short box nonce", mustBenc(t, map[string]any{"e": make([]byte, 40), "ek": m.box.ek, "n": make([]byte, 8)}), ErrMalformed},
		{"decrypts to garbage", m.encrypt(t, &p.box.public, 4, []byte("garbage")), ErrUndecryptable},
		{"for someone else", m.encrypt(t, &stranger.public, 5, m.packet(t, now, ping)), nil},
		{"valid", valid, nil},
		{"duplicate", valid, nil},
		{"replay rewrapped", rewrapped, ErrReplay},
		{"unknown type", m.packet(t, now, map[string]any{"y": "zz"}), nil},
	}
	for _, tt := range tests {
		err := p.receive(nil, tt.in)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: receive = %v, want %v", tt.name, err, tt.want)
		}
		if err != nil {
			p.refused(nil, err)
		}
	}
	var msgs int
	for len(p.Events()) > 0 {
		if e := <-p.Events(); e.Type == EventMessage {
			msgs++
		}
	}
	if msgs != 1 {
		t.Errorf("%d message events, want 1 (duplicate and replay dropped)", msgs)
	}
	if n := p.Stats().Rejected[ReasonOf(ErrMalformed)]; n != 12 {
		t.Errorf("Stats malformed = %d, want 12", n)
	}
}

func TestReceiveRateLimit(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	p := newTestPeer(t, "room", 1, func(c *Config) {
		c.Clock = func() time.Time { return now }
		c.PeerPacketRate, c.PeerPacketBurst = 0.001, 3
	})
	m := newSender(t, 9, "room")
	var limited int
	for range 10 {
		if err := p.receive(nil, m.packet(t, now, map[string]any{"y": "p"})); errors.Is(err, ErrRateLimited) {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// The first packet adds the peer, three more pass the burst.
	if limited != 6 {
		t.Errorf("%d packets rate limited, want 6", limited)
	}
}

func TestReceivePeerTableFull(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	p := newTestPeer(t, "room", 1, func(c *Config) {
		c.Clock = func() time.Time { return now }
		c.MaxPeers = 2
	})
	for i := range 3 {
		err := p.receive(nil, newSender(t, byte(10+i), "room").packet(t, now, map[string]any{"y": "p"}))
		if i < 2 && err != nil || i == 2 && !errors.Is(err, ErrTooManyPeers) {
			t.Errorf("peer %d: %v", i, err)
		}
	}
}

// TestHandshakeDoesNotReplaceKey: the unsigned ek of a BEP 10 handshake
// does not overwrite the ek of a peer known from a fresh signed packet (B4).
func TestHandshakeDoesNotReplaceKey(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	p := newTestPeer(t, "room", 1, func(c *Config) { c.Clock = func() time.Time { return now } })
	m := newSender(t, 9, "room")
	if err := p.receive(nil, m.packet(t, now, map[string]any{"y": "p"})); err != nil {
		t.Fatal(err)
	}
	evil, _ := boxKeyFromSecret(secret32(bytes.Repeat([]byte{0x66}, 32)))
	p.mu.Lock()
	_, err := p.sawPeer(m.id.pub, &evil.public, false, now.Add(time.Second))
	got := p.peers[m.id.addr].ek
	p.mu.Unlock()
	if err != nil || got != m.box.public {
		t.Errorf("after an unsigned handshake ek = %x (err %v), want the signed %x", got, err, m.box.public)
	}
}

func mustBenc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := benc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
