package bugout

import (
	"bytes"
	"crypto/sha256"
	"errors"

	"github.com/mr-tron/base58"
)

// errChecksum is what a bs58check string with a wrong checksum decodes to.
var errChecksum = errors.New("invalid checksum")

// bs58checkEncode is bitcoin's base58check: base58(payload ‖ sha256d(payload)[:4]).
func bs58checkEncode(payload []byte) string {
	buf := make([]byte, 0, len(payload)+4)
	buf = append(buf, payload...)
	sum := checksum(payload)
	return base58.Encode(append(buf, sum[:]...))
}

// bs58checkDecode returns the payload of a base58check string.
func bs58checkDecode(s string) ([]byte, error) {
	raw, err := base58.Decode(s)
	if err != nil {
		return nil, err
	}
	if len(raw) < 4 {
		return nil, errors.New("too short for a checksum")
	}
	payload, sum := raw[:len(raw)-4], raw[len(raw)-4:]
	want := checksum(payload)
	if !bytes.Equal(sum, want[:]) {
		return nil, errChecksum
	}
	return payload, nil
}

func checksum(payload []byte) [4]byte {
	h1 := sha256.Sum256(payload)
	h2 := sha256.Sum256(h1[:])
	return [4]byte(h2[:4])
}
