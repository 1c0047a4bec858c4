package transport

import (
	"encoding/json"
	"errors"
)

// The tracker JSON as a webtorrent client speaks it (§3.1). 20-byte values
// travel as "binary" strings: one code point, U+0000–U+00FF, per byte.

// binary is b as Buffer.toString('binary') makes it.
func binary(b [20]byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

var errBinary = errors.New("not a 20-byte binary string")

// parseBinary reads a decoded binary string back into 20 bytes.
func parseBinary(s string) ([20]byte, error) {
	var b [20]byte
	n := 0
	for _, r := range s {
		if r > 0xFF || n == len(b) {
			return b, errBinary
		}
		b[n] = byte(r)
		n++
	}
	if n != len(b) {
		return b, errBinary
	}
	return b, nil
}

type sdp struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

type offerEntry struct {
	Offer   sdp    `json:"offer"`
	OfferID string `json:"offer_id"`
}

// announce is what we send: an announce with offers, or (Answer set) the
// answer to a relayed offer, which carries no event or numwant.
type announce struct {
	Action     string       `json:"action"`
	InfoHash   string       `json:"info_hash"`
	PeerID     string       `json:"peer_id"`
	Numwant    *int         `json:"numwant,omitempty"`
	Uploaded   *int         `json:"uploaded,omitempty"`
	Downloaded *int         `json:"downloaded,omitempty"`
	Left       *int         `json:"left,omitempty"`
	Event      string       `json:"event,omitempty"`
	TrackerID  string       `json:"trackerid,omitempty"`
	Offers     []offerEntry `json:"offers,omitempty"`
	ToPeerID   string       `json:"to_peer_id,omitempty"`
	Answer     *sdp         `json:"answer,omitempty"`
	OfferID    string       `json:"offer_id,omitempty"`
}

// incoming is any message a tracker sends us: an announce response, a
// relayed offer or a relayed answer.
type incoming struct {
	Action    string `json:"action"`
	InfoHash  string `json:"info_hash"`
	PeerID    string `json:"peer_id"`
	OfferID   string `json:"offer_id"`
	Offer     *sdp   `json:"offer"`
	Answer    *sdp   `json:"answer"`
	Interval  int    `json:"interval"`
	Failure   string `json:"failure reason"`
	Warning   string `json:"warning message"`
	TrackerID string `json:"tracker id"`
}

func decodeIncoming(b []byte) (*incoming, error) {
	var m incoming
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func intp(v int) *int { return &v }
