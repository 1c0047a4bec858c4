package btwire

import (
	"errors"
	"fmt"

	"github.com/boxsignal/boxsignal/bugout/internal/benc"
)

// ExtHandshake is the part of a BEP 10 handshake a Bugout peer reads and
// writes: m (extension name → the sender's id for it) and Bugout's id, pk
// and ek (§3.3). Other keys (metadata_size, v, …) are ignored on read.
// Nothing in it is signed.
type ExtHandshake struct {
	M  map[string]int64 // only integer entries in 1..255 are kept
	ID []byte           // room identifier (nobody checks it)
	PK []byte           // base58 Ed25519 public key
	EK []byte           // base58 Curve25519 box key
}

// wireExt is the decode target; m values of other types are tolerated.
type wireExt struct {
	M  map[string]any `bencode:"m"`
	ID benc.Bytes     `bencode:"id"`
	PK benc.Bytes     `bencode:"pk"`
	EK benc.Bytes     `bencode:"ek"`
}

// ErrBadExtHandshake wraps every reason an extended handshake is refused.
var ErrBadExtHandshake = errors.New("btwire: bad extended handshake")

// ParseExtHandshake decodes a BEP 10 handshake payload (after the ext id).
func ParseExtHandshake(b []byte) (ExtHandshake, error) {
	var w wireExt
	if err := benc.Unmarshal(b, &w); err != nil {
		return ExtHandshake{}, fmt.Errorf("%w: %v", ErrBadExtHandshake, err)
	}
	h := ExtHandshake{ID: w.ID, PK: w.PK, EK: w.EK}
	for name, v := range w.M {
		if id, ok := v.(int64); ok && id > 0 && id <= 255 {
			if h.M == nil {
				h.M = make(map[string]int64)
			}
			h.M[name] = id
		}
	}
	if h.M["bo_channel"] != 0 && (h.PK == nil || h.EK == nil) {
		// Bugout reads both without a guard (§3.3): a JS peer would throw.
		return ExtHandshake{}, fmt.Errorf("%w: bo_channel without pk and ek", ErrBadExtHandshake)
	}
	return h, nil
}

// Marshal encodes the handshake. Absent (nil) fields are left out.
func (h ExtHandshake) Marshal() ([]byte, error) {
	d := map[string]any{}
	m := map[string]any{}
	for k, v := range h.M {
		m[k] = v
	}
	d["m"] = m
	if h.ID != nil {
		d["id"] = h.ID
	}
	if h.PK != nil {
		d["pk"] = h.PK
	}
	if h.EK != nil {
		d["ek"] = h.EK
	}
	return benc.Marshal(d)
}
