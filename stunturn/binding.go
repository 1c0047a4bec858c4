package stunturn

import (
	"encoding/binary"
	"hash/crc32"
	"net/netip"
)

// The STUN Binding fast path. Binding requests are most of what a STUN
// server sees, and answering one needs nothing of pion's state, so the UDP
// listener answers them itself (listen.go) without allocating, after the
// same per-source rate limit as before. The answer is byte for byte what
// pion/turn v5 sends (handleBindingRequest): a Binding success response
// with XOR-MAPPED-ADDRESS and FINGERPRINT, nothing else (no SOFTWARE, no
// RFC 5780 OTHER-ADDRESS), so it amplifies nothing. TestBindingResponseBytes
// pins that.

const (
	stunHeaderSize  = 20
	stunMagicCookie = 0x2112A442
	fingerprintXOR  = 0x5354554e // RFC 8489 §14.7

	typeBindingRequest = 0x0001
	typeBindingSuccess = 0x0101
	attrXORMapped      = 0x0020
	attrFingerprint    = 0x8028

	// bindingResponseMax is the size of the largest response: header,
	// XOR-MAPPED-ADDRESS for IPv6 (4+20) and FINGERPRINT (4+4).
	bindingResponseMax = stunHeaderSize + 24 + 8
)

// parseBindingRequest reports whether b is a STUN Binding request that pion
// would answer with a success response, and returns its transaction ID. It
// is stricter than pion: the message must fill b exactly, every attribute
// must be well-formed and comprehension-optional (type 0x8000 and up, e.g.
// SOFTWARE, FINGERPRINT), the type exactly 0x0001. Anything else (a
// comprehension-required attribute, which pion may answer with 420,
// trailing bytes, odd type bits) goes the slow way, through the guard to
// pion, as before. It does not check FINGERPRINT; neither does pion.
func parseBindingRequest(b []byte) (tid [12]byte, ok bool) {
	if len(b) < stunHeaderSize ||
		binary.BigEndian.Uint16(b[0:2]) != typeBindingRequest ||
		binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie ||
		int(binary.BigEndian.Uint16(b[2:4])) != len(b)-stunHeaderSize {
		return tid, false
	}
	for a := b[stunHeaderSize:]; len(a) > 0; {
		if len(a) < 4 {
			return tid, false
		}
		typ := binary.BigEndian.Uint16(a[0:2])
		padded := (int(binary.BigEndian.Uint16(a[2:4])) + 3) &^ 3
		if typ < 0x8000 || len(a)-4 < padded {
			return tid, false
		}
		a = a[4+padded:]
	}
	copy(tid[:], b[8:20])
	return tid, true
}

// appendBindingSuccess appends to dst the Binding success response to the
// request with transaction ID tid from the client at from (an IPv4-mapped
// address is answered as IPv4, as pion does). With a dst of capacity
// bindingResponseMax it does not allocate.
func appendBindingSuccess(dst []byte, tid [12]byte, from netip.AddrPort) []byte {
	ip := from.Addr().Unmap()
	addrLen := 4 + 4 // family, port, IPv4
	if ip.Is6() {
		addrLen = 4 + 16
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, typeBindingSuccess)
	dst = binary.BigEndian.AppendUint16(dst, uint16(4+addrLen+8))
	dst = binary.BigEndian.AppendUint32(dst, stunMagicCookie)
	dst = append(dst, tid[:]...)

	// XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the port XORed with the top of
	// the cookie, the address with the cookie (and, for IPv6, the
	// transaction ID).
	dst = binary.BigEndian.AppendUint16(dst, attrXORMapped)
	dst = binary.BigEndian.AppendUint16(dst, uint16(addrLen))
	family := byte(0x01)
	if ip.Is6() {
		family = 0x02
	}
	dst = append(dst, 0, family)
	dst = binary.BigEndian.AppendUint16(dst, from.Port()^(stunMagicCookie>>16))
	var key [16]byte
	binary.BigEndian.PutUint32(key[0:4], stunMagicCookie)
	copy(key[4:], tid[:])
	if ip.Is4() {
		a := ip.As4()
		for i := range a {
			dst = append(dst, a[i]^key[i])
		}
	} else {
		a := ip.As16()
		for i := range a {
			dst = append(dst, a[i]^key[i])
		}
	}

	// FINGERPRINT (§14.7): CRC-32 of everything before it, with the header
	// length already counting it.
	crc := crc32IEEE(dst[start:]) ^ fingerprintXOR
	dst = binary.BigEndian.AppendUint16(dst, attrFingerprint)
	dst = binary.BigEndian.AppendUint16(dst, 4)
	return binary.BigEndian.AppendUint32(dst, crc)
}

// crc32IEEE is crc32.ChecksumIEEE, which makes its argument escape (it
// calls through a function variable) and so would cost the fast path an
// allocation. For the 44 bytes or fewer it sees, a table lookup per byte is
// as fast.
func crc32IEEE(p []byte) uint32 {
	crc := ^uint32(0)
	for _, v := range p {
		crc = crc32.IEEETable[byte(crc)^v] ^ (crc >> 8)
	}
	return ^crc
}
