package bugout

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/boxsignal/boxsignal/bugout/internal/benc"
	"golang.org/x/crypto/nacl/box"
)

// envelope is the outer dict of a payload: signed {p, s} or encrypted
// {e, ek, n}.
type envelope struct {
	E  benc.Bytes `bencode:"e"`
	EK benc.Bytes `bencode:"ek"`
	N  benc.Bytes `bencode:"n"`
	P  benc.Bytes `bencode:"p"`
	S  benc.Bytes `bencode:"s"`
}

// encrypted is Bugout's test: e, n and ek all present.
func (e *envelope) encrypted() bool { return e.E != nil && e.N != nil && e.EK != nil }

// packet is a decoded inner packet (§4.3). A nil byte field was absent.
type packet struct {
	T  *int64     `bencode:"t"`
	I  benc.Bytes `bencode:"i"`
	PK benc.Bytes `bencode:"pk"`
	EK benc.Bytes `bencode:"ek"`
	N  benc.Bytes `bencode:"n"`
	Y  benc.Bytes `bencode:"y"`
	V  benc.Bytes `bencode:"v"`
	C  benc.Bytes `bencode:"c"`
	A  benc.Bytes `bencode:"a"`
	RN benc.Bytes `bencode:"rn"`
	RR benc.Bytes `bencode:"rr"`
}

// opened is an authenticated packet.
type opened struct {
	pkt       packet
	pub       ed25519.PublicKey
	ek        *[32]byte // the sender's box key from the signed packet
	from      Address
	encrypted bool // arrived in an encrypted envelope (DM or RPC)
}

// errNotForUs: a well-formed encrypted envelope we cannot open. Not a
// refusal: it is gossiped (§4.6).
var errNotForUs = errors.New("bugout: encrypted for someone else")

// opener holds what openPayload needs.
type opener struct {
	box        *boxKey
	identifier string
	timeout    time.Duration // packets older than this are expired
	skew       time.Duration // packets further ahead than this are refused
	maxBytes   int
}

// open decodes, decrypts and authenticates one payload exactly as Bugout's
// onMessage does (§4.5), stricter where the spec's hardening says so. It
// returns errNotForUs for an encrypted envelope it cannot open, or an error
// wrapping one of the Err* refusal sentinels.
func (o *opener) open(m []byte, now time.Time) (*opened, error) {
	if len(m) > o.maxBytes {
		return nil, reject(ErrTooLarge, "%d bytes, limit %d", len(m), o.maxBytes)
	}
	var env envelope
	if err := benc.Unmarshal(m, &env); err != nil {
		return nil, reject(ErrMalformed, "envelope: %v", err)
	}
	encrypted := env.encrypted()
	if encrypted {
		if len(env.N) != 24 {
			return nil, reject(ErrMalformed, "box nonce is %d bytes, want 24", len(env.N))
		}
		peerEK, err := parseBoxKey(env.EK)
		if err != nil {
			return nil, reject(ErrBadKey, "envelope %v", err)
		}
		if len(env.E) < box.Overhead {
			return nil, reject(ErrMalformed, "box of %d bytes", len(env.E))
		}
		sk := [32]byte(o.box.secret)
		plain, ok := box.Open(nil, env.E, (*[24]byte)(env.N), peerEK, &sk)
		if !ok {
			return nil, errNotForUs
		}
		env = envelope{}
		if err := benc.Unmarshal(plain, &env); err != nil {
			return nil, reject(ErrUndecryptable, "decrypted envelope: %v", err)
		}
		if env.P == nil {
			return nil, reject(ErrUndecryptable, "decrypted envelope has no p")
		}
	}
	if env.P == nil {
		return nil, reject(ErrMalformed, "no p")
	}
	if len(env.S) != ed25519.SignatureSize {
		return nil, reject(ErrMalformed, "signature is %d bytes, want %d", len(env.S), ed25519.SignatureSize)
	}
	var pkt packet
	if err := benc.Unmarshal(env.P, &pkt); err != nil {
		return nil, reject(ErrMalformed, "inner packet: %v", err)
	}
	if pkt.T == nil || pkt.I == nil || pkt.PK == nil || pkt.EK == nil || pkt.N == nil {
		return nil, reject(ErrMalformed, "inner packet lacks one of t, i, pk, ek, n")
	}
	if len(pkt.N) == 0 || len(pkt.N) > 64 {
		return nil, reject(ErrMalformed, "n is %d bytes", len(pkt.N))
	}
	pub, err := parsePublicKey(pkt.PK)
	if err != nil {
		return nil, reject(ErrBadKey, "%v", err)
	}
	// Verify the bytes received, never a re-encoding (§4.2).
	if !ed25519.Verify(pub, env.P, env.S) {
		return nil, reject(ErrBadSignature, "from %s", AddressOf(pub))
	}
	from := AddressOf(pub)
	if string(pkt.I) != o.identifier {
		return nil, reject(ErrWrongRoom, "from %s for room %q", from, truncate(pkt.I))
	}
	t := time.UnixMilli(*pkt.T)
	if !t.Add(o.timeout).After(now) {
		return nil, reject(ErrExpired, "from %s, %v old", from, now.Sub(t).Round(time.Millisecond))
	}
	if t.After(now.Add(o.skew)) {
		return nil, reject(ErrFromFuture, "from %s, %v ahead", from, t.Sub(now).Round(time.Millisecond))
	}
	ek, err := parseBoxKey(pkt.EK)
	if err != nil {
		return nil, reject(ErrBadKey, "from %s: %v", from, err)
	}
	if err := pkt.checkType(); err != nil {
		return nil, fmt.Errorf("from %s: %w", from, err)
	}
	return &opened{pkt: pkt, pub: pub, ek: ek, from: from, encrypted: encrypted}, nil
}

// checkType checks the fields each packet type needs (§4.3, §4.11).
func (p *packet) checkType() error {
	switch string(p.Y) {
	case typeMessage:
		if p.V == nil {
			return reject(ErrMalformed, "message without v")
		}
	case typeRPC:
		if p.C == nil || p.A == nil || p.RN == nil {
			return reject(ErrMalformed, "rpc call lacks one of c, a, rn")
		}
		if len(p.RN) != nonceLen {
			return reject(ErrMalformed, "rpc nonce is %d bytes, want %d", len(p.RN), nonceLen)
		}
	case typeResponse:
		if p.RN == nil || p.RR == nil {
			return reject(ErrMalformed, "rpc response lacks rn or rr")
		}
	}
	return nil
}

// truncate keeps logged attacker strings short.
func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
