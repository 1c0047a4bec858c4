package signal

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/gobwas/ws"
)

// The WebSocket protocol (RFC 6455) is gobwas/ws's low-level API: its
// HTTPUpgrader for the opening handshake, its header reader, checks and
// cipher for client frames, and its header writer for ours. What is ours is
// where the bytes live: an event loop reads sockets into its own buffer and
// queues frames per connection, so frames are parsed from memory and
// encoded into the queue in place. There are no extensions (no compression)
// and no subprotocols.

// upgrader answers opening handshakes; a refused one gets the library's
// HTTP error (400, 405 or 426 with Sec-WebSocket-Version: 13).
var upgrader = ws.HTTPUpgrader{Timeout: 10 * time.Second}

// errIncomplete is frameReader.header's answer when the bytes end inside a
// frame header: it is not an error, the rest has not arrived yet.
var errIncomplete = errors.New("signal: frame header incomplete")

// frameReader parses frame headers from bytes already read, without
// allocating: one is reused by whoever reads a connection.
type frameReader struct {
	r   bytes.Reader
	buf [ws.MaxHeaderSize - 2]byte // ws.ReadHeaderBuffer's room
}

// header parses the frame header at the start of b and returns it with its
// size in bytes.
func (f *frameReader) header(b []byte) (h ws.Header, size int, err error) {
	f.r.Reset(b)
	h, err = ws.ReadHeaderBuffer(&f.r, f.buf[:])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return h, 0, errIncomplete
	}
	return h, len(b) - f.r.Len(), err
}

// frameReserve is the room begin leaves for the header of a frame whose
// payload is then encoded after it: the header of a 126- to 65535-byte
// payload, an offer's size, which so is never moved.
const frameReserve = 4

// putHeader writes the header of the final, unmasked frame whose payload
// follows the frameReserve bytes at b[start:], moving the payload when its
// header has another size.
func putHeader(b []byte, start int, op ws.OpCode) []byte {
	n := len(b) - start - frameReserve
	h := ws.Header{Fin: true, OpCode: op, Length: int64(n)}
	size := ws.HeaderSize(h)
	if size != frameReserve {
		if size > frameReserve {
			b = append(b, make([]byte, size-frameReserve)...)
		}
		copy(b[start+size:], b[start+frameReserve:start+frameReserve+n])
		b = b[:start+size+n]
	}
	// The header is encoded into the queue's spare capacity (heap memory,
	// so nothing escapes and nothing is allocated), then copied in place.
	if cap(b)-len(b) < ws.MaxHeaderSize {
		b = append(b, make([]byte, ws.MaxHeaderSize)...)[:len(b)]
	}
	scratch := (*headerScratch)(b[len(b) : len(b)+ws.MaxHeaderSize])
	ws.WriteHeaderBuffer(scratch, h, scratch[:]) // cannot fail: scratch takes every byte
	copy(b[start:start+size], scratch[:size])
	return b
}

// headerScratch is room for one frame header, which ws.WriteHeaderBuffer
// encodes into it and then "writes" to it: the write is the copy onto
// itself.
type headerScratch [ws.MaxHeaderSize]byte

func (s *headerScratch) Write(p []byte) (int, error) { return copy(s[:], p), nil }

// checkCloseFrame is ws.CheckCloseFrameData, which lets codes past the
// private range (5000 and up) through: RFC 6455 §7.4 defines none, so a
// peer may not send them.
func checkCloseFrame(code ws.StatusCode, reason string) error {
	if code > ws.StatusRangePrivate.Max {
		return ws.ErrProtocolStatusCodeUnknown
	}
	return ws.CheckCloseFrameData(code, reason)
}
