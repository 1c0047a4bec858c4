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
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	s := raw[1 : len(raw)-1]
	n := 0
	for i := 0; i < len(s); n++ {
		if n == len(h) {
			return false
		}
		c := s[i]
		switch {
		case c == '\\':
			if i+1 == len(s) {
				return false
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				c = e
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'u':
				// Only U+0000–U+00FF: \u00XX.
				if i+6 > len(s) || s[i+2] != '0' || s[i+3] != '0' {
					return false
				}
				hi, ok1 := unhex(s[i+4])
				lo, ok2 := unhex(s[i+5])
				if !ok1 || !ok2 {
					return false
				}
				c = hi<<4 | lo
				i += 4
			default:
				return false
			}
			i += 2
		case c < 0x20 || c == '"':
			return false
		case c < utf8.RuneSelf:
			i++
		case (c == 0xC2 || c == 0xC3) && i+1 < len(s) && s[i+1]&0xC0 == 0x80:
			c = c<<6 | s[i+1]&0x3F
			i += 2
		default:
			return false // invalid UTF-8, or a code point over U+00FF
		}
		h[n] = c
	}
	return n == len(h)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
