package btwire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Protocol is the handshake's protocol string.
const Protocol = "BitTorrent protocol"

// HandshakeLen is the size of a handshake: 1 + 19 + 8 + 20 + 20.
const HandshakeLen = 68

// ReservedExtended is the reserved field a Bugout peer sends: only byte 5
// bit 0x10 (BEP 10) set. No fast (BEP 6) or DHT bit, so webtorrent sends a
// plain bitfield and never a BEP 6 message.
var ReservedExtended = [8]byte{5: 0x10}

// ErrNotBitTorrent is returned for a handshake with the wrong protocol string.
var ErrNotBitTorrent = errors.New("btwire: not a BitTorrent handshake")

// Handshake is the first message each side sends.
type Handshake struct {
	Reserved [8]byte
	InfoHash [20]byte
	PeerID   [20]byte
}

// SupportsExtended reports whether the remote set the BEP 10 bit.
func (h Handshake) SupportsExtended() bool { return h.Reserved[5]&0x10 != 0 }

// Bytes encodes the handshake.
func (h Handshake) Bytes() []byte {
	b := make([]byte, 0, HandshakeLen)
	b = append(b, byte(len(Protocol)))
	b = append(b, Protocol...)
	b = append(b, h.Reserved[:]...)
	b = append(b, h.InfoHash[:]...)
	return append(b, h.PeerID[:]...)
}

// ReadHandshake reads one handshake from r.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var b [HandshakeLen]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return Handshake{}, fmt.Errorf("read handshake: %w", err)
	}
	if b[0] != byte(len(Protocol)) {
		return Handshake{}, fmt.Errorf("%w: protocol length %d", ErrNotBitTorrent, b[0])
	}
	if _, err := io.ReadFull(r, b[1:]); err != nil {
		return Handshake{}, fmt.Errorf("read handshake: %w", err)
	}
	return ParseHandshake(b[:])
}

// ParseHandshake decodes a 68-byte handshake.
func ParseHandshake(b []byte) (Handshake, error) {
	if len(b) != HandshakeLen {
		return Handshake{}, fmt.Errorf("%w: %d bytes", ErrNotBitTorrent, len(b))
	}
	if b[0] != byte(len(Protocol)) || !bytes.Equal(b[1:20], []byte(Protocol)) {
		return Handshake{}, fmt.Errorf("%w: protocol %q", ErrNotBitTorrent, b[1:20])
	}
	var h Handshake
	copy(h.Reserved[:], b[20:28])
	copy(h.InfoHash[:], b[28:48])
	copy(h.PeerID[:], b[48:68])
	return h, nil
}
