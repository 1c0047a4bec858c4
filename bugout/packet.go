package bugout

import (
	"crypto/sha512"
	"fmt"

	"github.com/boxsignal/boxsignal/bugout/internal/benc"
	"golang.org/x/crypto/nacl/box"
)

// Packet types (the inner y field, §4.3).
const (
	typePing     = "p"
	typeMessage  = "m"
	typeRPC      = "r"
	typeResponse = "rr"
	typeLeave    = "x"
)

// nonceLen is the length of a packet's n and an RPC's rn.
const nonceLen = 8

// makePacket builds a signed envelope (§4.2): bencode({p: bencode(inner),
// s: ed25519(p)}) where inner = {t, i, pk, ek, n} plus params. params values
// are string or []byte.
func makePacket(id *Identity, ek, identifier string, tMillis int64, n []byte, params map[string]any) ([]byte, error) {
	inner := map[string]any{
		"t":  tMillis,
		"i":  identifier,
		"pk": id.pk,
		"ek": ek,
		"n":  n,
	}
	for k, v := range params {
		inner[k] = v
	}
	pe, err := benc.Marshal(inner)
	if err != nil {
		return nil, fmt.Errorf("bugout: encode packet: %w", err)
	}
	outer, err := benc.Marshal(map[string]any{"p": pe, "s": id.sign(pe)})
	if err != nil {
		return nil, fmt.Errorf("bugout: encode envelope: %w", err)
	}
	return outer, nil
}

// encryptPacket wraps a signed envelope for the holder of the box key to
// (§4.4): bencode({e: box(signed), ek: my ek, n: nonce}).
func encryptPacket(k *boxKey, to *[32]byte, nonce *[24]byte, signed []byte) ([]byte, error) {
	sk := [32]byte(k.secret)
	e := box.Seal(nil, signed, nonce, to, &sk)
	out, err := benc.Marshal(map[string]any{"e": e, "ek": k.ek, "n": nonce[:]})
	if err != nil {
		return nil, fmt.Errorf("bugout: encode encrypted envelope: %w", err)
	}
	return out, nil
}

// seenKey is Bugout's de-duplication key: sha512(payload)[16:64] (§4.5).
type seenKey [48]byte

func keyOf(payload []byte) seenKey {
	h := sha512.Sum512(payload)
	return seenKey(h[16:])
}
