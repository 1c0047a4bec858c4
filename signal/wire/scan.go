package wire

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner validates JSON (RFC 8259, strictly: UTF-8 only, no lone
// surrogates, at most maxDepth nested containers, as jsontext does) and
// moves past whole values without building anything. It is what makes
// decoding an announce cheap: the SDP objects it relays are validated, not
// parsed, and their long strings are scanned eight bytes at a time.
type scanner struct {
	b     []byte
	i     int // the next byte
	depth int // containers open
}

// maxDepth is jsontext's limit on nested containers.
const maxDepth = 10000

// ws skips whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next returns the byte at s.i, or 0 at the end.
func (s *scanner) next() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// skip moves past the byte c, reporting whether it was there.
func (s *scanner) skip(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// value moves past the value at s.i and returns it.
func (s *scanner) value() ([]byte, bool) {
	start := s.i
	var ok bool
	switch s.next() {
	case '{', '[':
		ok = s.container()
	default:
		ok = s.scalar()
	}
	return s.b[start:s.i], ok
}

// scalar moves past the string, number or literal at s.i.
func (s *scanner) scalar() bool {
	switch s.next() {
	case '"':
		_, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.number()
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// number moves past a number; like jsontext it does not look at the byte
// after it, which the caller checks as a delimiter.
func (s *scanner) number() bool {
	b, i := s.b, s.i
	digits := func() int {
		n := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	s.i = i
	return true
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special flags, in the high bit of its byte, every byte of x that a string
// cannot hold as it is: '"', '\', a control character or a byte of a
// multi-byte rune. The lowest flag is exact; higher ones may be spurious.
func special(x uint64) uint64 {
	zero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return ((x - 0x20*ones) & ^x & highs) | zero(x^('"'*ones)) | zero(x^('\\'*ones)) | (x & highs)
}

// str moves past the string at s.i (b[s.i] is '"') and reports whether it
// holds escapes.
func (s *scanner) str() (escaped, ok bool) {
	b := s.b
	i := s.i + 1
	for {
		for i+8 <= len(b) {
			if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			return false, false
		}
		switch c := b[i]; {
		case c == '\\':
			escaped = true
			if i+4 <= len(b) && binary.LittleEndian.Uint32(b[i:]) == crlf {
				i += 4 // SDP lines end so
				continue
			}
			if i+1 < len(b) && shortEscape[b[i+1]] {
				i += 2
				continue
			}
			n := escape(b[i:])
			if n == 0 {
				return false, false
			}
			i += n
		case c == '"':
			s.i = i + 1
			return escaped, true
		case c < 0x20:
			return false, false
		case c < utf8.RuneSelf:
			i++
		case c >= 0xC2 && c <= 0xDF && i+1 < len(b) && b[i+1]&0xC0 == 0x80:
			i += 2 // a 2-byte rune: U+0080–U+00FF in binary strings
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return false, false
			}
			i += n
		}
	}
}

// crlf is `\r\n` as a little-endian word.
const crlf = uint32('\\') | uint32('r')<<8 | uint32('\\')<<16 | uint32('n')<<24

// shortEscape lists the characters of two-byte escapes.
var shortEscape = [256]bool{'"': true, '\\': true, '/': true, 'b': true, 'f': true, 'n': true, 'r': true, 't': true}

// escape returns the length of the escape sequence at the start of b, or 0
// if it is not a valid one. A surrogate must be a high one escaped right
// before a low one.
func escape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
	default:
		return 0
	}
	r1, ok := hex4(b[2:])
	if !ok {
		return 0
	}
	if !utf16.IsSurrogate(r1) {
		return 6
	}
	if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
		return 0
	}
	r2, ok := hex4(b[8:])
	if !ok || utf16.DecodeRune(r1, r2) == utf8.RuneError {
		return 0
	}
	return 12
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// open enters the object or array at s.i.
func (s *scanner) open() bool {
	if s.depth == maxDepth {
		return false
	}
	s.depth++
	s.i++
	return true
}

// container moves past the object or array at s.i, without recursion: a
// bit per level records which of the two is open. The first 64 levels fit
// a word; deeper ones (rare, hostile) take a pooled slice.
func (s *scanner) container() bool {
	var (
		low  uint64    // bit k: level k is an object
		deep *[]uint64 // levels from 64 on
		n    int       // levels open
	)
	defer func() {
		if deep != nil {
			deepStacks.Put(deep)
		}
	}()
	push := func(obj bool) {
		if n >= 64 {
			if deep == nil {
				deep = deepStacks.Get().(*[]uint64)
			}
			w, bit := (n-64)/64, uint((n-64)%64)
			(*deep)[w] = (*deep)[w]&^(1<<bit) | b2u(obj)<<bit
		} else {
			low = low&^(1<<uint(n)) | b2u(obj)<<uint(n)
		}
		n++
	}
	isObj := func() bool {
		k := n - 1
		if k >= 64 {
			return (*deep)[(k-64)/64]&(1<<uint((k-64)%64)) != 0
		}
		return low&(1<<uint(k)) != 0
	}
	for {
		// At an opening bracket: enter it.
		obj := s.next() == '{'
		if !s.open() {
			return false
		}
		push(obj)
		s.ws()
		if s.skip(closer(obj)) {
			n--
			s.depth--
			goto closed
		}
	member:
		if isObj() {
			if s.next() != '"' {
				return false
			}
			if _, ok := s.str(); !ok {
				return false
			}
			s.ws()
			if !s.skip(':') {
				return false
			}
			s.ws()
		}
		if c := s.next(); c == '{' || c == '[' {
			continue
		}
		if !s.scalar() {
			return false
		}
	closed:
		// After a value: a comma and the next member, or the end of
		// the container, and of its parent perhaps.
		for {
			if n == 0 {
				return true
			}
			s.ws()
			if s.skip(',') {
				s.ws()
				goto member
			}
			if !s.skip(closer(isObj())) {
				return false
			}
			n--
			s.depth--
		}
	}
}

var deepStacks = sync.Pool{New: func() any { s := make([]uint64, (maxDepth+63)/64); return &s }}

func closer(obj bool) byte {
	if obj {
		return '}'
	}
	return ']'
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
