// Package benc is the strict bencode used for Bugout packets and BEP 10
// handshakes: github.com/anacrolix/torrent/bencode, which encodes maps with
// sorted keys and whose decoder refuses unsorted or duplicate dict keys,
// leading zeros and over-deep nesting, plus the two things Bugout needs on
// top: a size limit before decoding and byte strings that must really be
// byte strings.
package benc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/anacrolix/torrent/bencode"
)

// Marshal encodes v canonically: dict keys sorted by bytes, strings and
// []byte as byte strings, integers as i…e.
func Marshal(v any) ([]byte, error) { return bencode.Marshal(v) }

// maxDepth bounds nesting; Bugout packets nest two levels.
const maxDepth = 16

// Unmarshal decodes exactly one canonical value from data into v. It fails
// on trailing bytes and, for every dict at any depth, on unsorted or
// duplicate keys: the library checks key order only when it decodes into
// interface values, so the input is first decoded that way, then into v.
func Unmarshal(data []byte, v any) error {
	var generic any
	if err := decode(data, &generic); err != nil {
		return err
	}
	return decode(data, v)
}

func decode(data []byte, v any) error {
	d := bencode.NewDecoder(bytes.NewReader(data))
	d.MaxStrLen = int64(len(data))
	d.MaxDepth = maxDepth
	if err := d.Decode(v); err != nil {
		return err
	}
	if rest := int64(len(data)) - d.Offset; rest != 0 {
		return fmt.Errorf("%d trailing bytes", rest)
	}
	return nil
}

// Bytes is a bencode byte string. Unlike a plain []byte field, which the
// decoder also fills from a list of small integers, it refuses anything but a
// byte string. A present empty string decodes to a non-nil empty slice, so
// nil means absent.
type Bytes []byte

var errNotString = errors.New("not a byte string")

// UnmarshalBencode implements bencode.Unmarshaler.
func (b *Bytes) UnmarshalBencode(raw []byte) error {
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return errNotString
	}
	var s []byte
	if err := bencode.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s == nil {
		s = []byte{}
	}
	*b = s
	return nil
}
