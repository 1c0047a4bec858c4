package signal

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
)

// The WebSocket protocol (RFC 6455) as far as a tracker's server side needs
// it: the opening handshake, client frames in, unmasked frames out. There are
// no extensions (no compression) and no subprotocols.

// Opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxControlPayload is the largest ping, pong or close payload.
const maxControlPayload = 125

// maxFrameHeader is the longest frame header: 2 bytes, an 8-byte length and
// a 4-byte mask.
const maxFrameHeader = 14

// checkUpgrade validates an opening handshake and returns its key, or the
// HTTP status and reason to refuse it with.
func checkUpgrade(r *http.Request) (key string, status int, reason string) {
	switch {
	case !headerHas(r.Header, "Connection", "upgrade"), !headerHas(r.Header, "Upgrade", "websocket"):
		return "", http.StatusBadRequest, "websocket: the client is not using the websocket protocol"
	case r.Method != http.MethodGet:
		return "", http.StatusMethodNotAllowed, "websocket: the method of an upgrade request must be GET"
	case !headerHas(r.Header, "Sec-Websocket-Version", "13"):
		return "", http.StatusBadRequest, "websocket: unsupported version: 13 is the only one"
	}
	key = r.Header.Get("Sec-Websocket-Key")
	if key == "" {
		return "", http.StatusBadRequest, "websocket: no Sec-WebSocket-Key"
	}
	return key, 0, ""
}

// headerHas reports whether a comma-separated header lists token, in any
// case.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h[http.CanonicalHeaderKey(name)] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// appendSwitching appends the server's reply to an opening handshake.
func appendSwitching(dst []byte, key string) []byte {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	var sum [sha1.Size]byte
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = base64.StdEncoding.AppendEncode(dst, h.Sum(sum[:0]))
	return append(dst, "\r\n\r\n"...)
}

// frameHeader is a parsed frame header.
type frameHeader struct {
	fin    bool
	rsv    byte // the three reserved bits; no extension is negotiated, so they must be 0
	op     byte
	masked bool
	mask   [4]byte
	length uint64 // payload bytes
	size   int    // header bytes
}

// parseFrameHeader reads the frame header at the start of b; ok is false when
// b does not hold all of it yet.
func parseFrameHeader(b []byte) (h frameHeader, ok bool) {
	if len(b) < 2 {
		return h, false
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.op = b[0] & 0x0F
	h.masked = b[1]&0x80 != 0
	h.size = 2
	switch n := b[1] & 0x7F; n {
	case 126:
		if len(b) < 4 {
			return h, false
		}
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
		h.size = 4
	case 127:
		if len(b) < 10 {
			return h, false
		}
		h.length = binary.BigEndian.Uint64(b[2:])
		h.size = 10
	default:
		h.length = uint64(n)
	}
	if h.masked {
		if len(b) < h.size+4 {
			return h, false
		}
		copy(h.mask[:], b[h.size:])
		h.size += 4
	}
	return h, true
}

// unmask XORs p with the frame's masking key, in place.
func unmask(p []byte, key [4]byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
}

// frameReserve is the room left before a payload that is encoded in place;
// endFrame turns it into the header.
const frameReserve = 4

// beginFrame reserves room for a frame header at the end of dst; the
// payload is appended after it, then endFrame(dst, start, op) writes the
// header, where start is len(dst) before the call.
func beginFrame(dst []byte) []byte { return append(dst, 0, 0, 0, 0) }

// endFrame writes the header of the unmasked, final frame whose payload
// follows the room beginFrame reserved at start, moving the payload when its
// header is not 4 bytes long.
func endFrame(b []byte, start int, op byte) []byte {
	n := len(b) - start - frameReserve
	b[start] = 0x80 | op
	switch {
	case n < 126:
		b[start+1] = byte(n)
		copy(b[start+2:], b[start+frameReserve:])
		return b[:len(b)-2]
	case n <= 0xFFFF:
		b[start+1] = 126
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
		return b
	}
	b = append(b, 0, 0, 0, 0, 0, 0)
	copy(b[start+10:], b[start+frameReserve:len(b)-6])
	b[start+1] = 127
	binary.BigEndian.PutUint64(b[start+2:], uint64(n))
	return b
}

// validCloseCode reports whether a peer may send code in a close frame.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code == 1015:
		return true
	}
	return code >= 3000 && code < 5000
}
