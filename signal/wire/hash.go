package wire

import (
	"encoding/hex"
	"unicode/utf8"
)

// Hash is a 20-byte protocol value: an info_hash, peer_id or offer_id.
type Hash [20]byte

// String returns the hash in lower-case hex, the form logs and stats use.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// HashFromHex parses 40 hex digits.
func HashFromHex(s string) (Hash, bool) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, false
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err == nil
}

// appendBinary appends h as a JSON string whose code points are its bytes,
// the way JavaScript's JSON.stringify writes a Buffer.toString('binary').
func appendBinary(dst []byte, h *Hash) []byte {
	dst = append(dst, '"')
	for _, b := range h {
		switch {
		case b == '"' || b == '\\':
			dst = append(dst, '\\', b)
		case b < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
		case b < 0x80:
			dst = append(dst, b)
		default:
			dst = append(dst, 0xC0|b>>6, 0x80|b&0x3F)
		}
	}
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// parseBinary reads a raw JSON string value (with its quotes) holding exactly
// 20 code points, each at most U+00FF.
func parseBinary(raw []byte, h *Hash) bool {
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	s := raw[1 : len(raw)-1]
	// Fast path: plain ASCII without escapes is the common case (webtorrent's
	// peer_ids, trystero's info_hashes).
	if len(s) == len(h) {
		ok := true
		for _, b := range s {
			if b < 0x20 || b >= 0x80 || b == '\\' {
				ok = false
				break
			}
		}
		if ok {
			copy(h[:], s)
			return true
		}
	}
	if len(s) > 6*len(h) { // longer than 20 escapes cannot be 20 code points
		return false
	}
	var tmp [6 * len(Hash{})]byte
	u, err := unquote(tmp[:0], raw)
	if err != nil {
		return false
	}
	n := 0
	for len(u) > 0 {
		r, size := utf8.DecodeRune(u)
		if r > 0xFF || n == len(h) {
			return false
		}
		h[n] = byte(r)
		n++
		u = u[size:]
	}
	return n == len(h)
}
