package dht

import (
	"errors"
	"fmt"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/go-json-experiment/json/jsontext"
	"google.golang.org/protobuf/encoding/protowire"
)

// The relay protocol's messages, as protobuf (encoded with protowire; the
// schema is in relay.proto). Each is sent varint-length-delimited on a
// long-lived stream, one stream per direction per pair of Boxes.
//
// Room interest is exchanged by key, a domain-separated hash of the
// info_hash (RoomKey), so a friend learns the info_hash of a room only if it
// has peers in it too.
type kind uint8

const (
	kindOffers kind = 10 + iota // offers of one announce, for the receiver's local peers
	kindAnswer                  // an answer to an offer the receiver relayed
	kindWant                    // "I have peers in this room; tell me when you do"
	kindHave                    // the receiver's peer count in a room the sender wants
	kindNack                    // an Offers batch found no peer
)

func (k kind) String() string {
	switch k {
	case kindOffers:
		return "offers"
	case kindAnswer:
		return "answer"
	case kindWant:
		return "want"
	case kindHave:
		return "have"
	case kindNack:
		return "nack"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits of one message, checked when decoding.
const (
	// MaxMessageBytes bounds one relay message; a larger one resets the
	// stream.
	MaxMessageBytes = 96 << 10
	// MaxSDPBytes bounds one offer or answer, as the tracker does.
	MaxSDPBytes = 16 << 10
	// maxBatch bounds the offers of one Offers message (the tracker relays
	// at most 10 per announce).
	maxBatch = 10
)

// msg is one decoded relay message. Which fields are set depends on kind.
type msg struct {
	kind     kind
	infoHash wire.Hash    // offers, answer, nack
	from     wire.Hash    // offers: the offerer; answer: the answerer; nack: the offerer
	to       wire.Hash    // answer: the offerer
	offerID  wire.Hash    // answer
	sdp      []byte       // answer: the "answer" value, raw JSON
	offers   []wire.Offer // offers
	key      RoomKey      // want, have
	peers    uint32       // want, have
	ttl      uint32       // want: seconds the interest lasts unless renewed
}

var errMsg = errors.New("dht: malformed relay message")

func msgErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errMsg, fmt.Sprintf(format, a...))
}

// Field numbers inside bodies.
const (
	fInfoHash = 1
	fFrom     = 2
	fTo       = 3
	fOfferID  = 4
	fSDP      = 5
	fOffer    = 6 // Offers: repeated Offer{1: offer_id, 2: sdp}
	fKey      = 1 // Want, Have
	fPeers    = 2
	fTTL      = 3
)

// encode appends m to dst as an Envelope{v=1, <body field>}.
func (m *msg) encode(dst []byte) []byte {
	var body []byte
	hash := func(num protowire.Number, h *wire.Hash) {
		body = protowire.AppendTag(body, num, protowire.BytesType)
		body = protowire.AppendBytes(body, h[:])
	}
	varint := func(num protowire.Number, v uint32) {
		body = protowire.AppendTag(body, num, protowire.VarintType)
		body = protowire.AppendVarint(body, uint64(v))
	}
	switch m.kind {
	case kindOffers:
		hash(fInfoHash, &m.infoHash)
		hash(fFrom, &m.from)
		for _, o := range m.offers {
			var ob []byte
			ob = protowire.AppendTag(ob, 1, protowire.BytesType)
			ob = protowire.AppendBytes(ob, o.ID[:])
			ob = protowire.AppendTag(ob, 2, protowire.BytesType)
			ob = protowire.AppendBytes(ob, o.SDP)
			body = protowire.AppendTag(body, fOffer, protowire.BytesType)
			body = protowire.AppendBytes(body, ob)
		}
	case kindAnswer:
		hash(fInfoHash, &m.infoHash)
		hash(fFrom, &m.from)
		hash(fTo, &m.to)
		hash(fOfferID, &m.offerID)
		body = protowire.AppendTag(body, fSDP, protowire.BytesType)
		body = protowire.AppendBytes(body, m.sdp)
	case kindWant, kindHave:
		body = protowire.AppendTag(body, fKey, protowire.BytesType)
		body = protowire.AppendBytes(body, m.key[:])
		varint(fPeers, m.peers)
		if m.kind == kindWant {
			varint(fTTL, m.ttl)
		}
	case kindNack:
		hash(fInfoHash, &m.infoHash)
		hash(fFrom, &m.from)
	}
	dst = protowire.AppendTag(dst, 1, protowire.VarintType)
	dst = protowire.AppendVarint(dst, 1)
	dst = protowire.AppendTag(dst, protowire.Number(m.kind), protowire.BytesType)
	return protowire.AppendBytes(dst, body)
}

// decode parses one Envelope into m. Unknown fields are skipped (so a newer
// Box may add some); a message must carry version 1 and exactly one known
// body, and every field it needs, with exact lengths.
func (m *msg) decode(b []byte) error {
	*m = msg{}
	var body []byte
	version := uint64(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return msgErr("bad tag")
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return msgErr("bad version")
			}
			version, b = v, b[n:]
		case num >= protowire.Number(kindOffers) && num <= protowire.Number(kindNack) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return msgErr("bad body")
			}
			if m.kind != 0 {
				return msgErr("more than one body")
			}
			m.kind, body, b = kind(num), v, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return msgErr("bad field %d", num)
			}
			b = b[n:]
		}
	}
	if version != 1 {
		return msgErr("version %d, want 1", version)
	}
	if m.kind == 0 {
		return msgErr("no body")
	}
	var seen uint32
	err := fields(body, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		seen |= 1 << num
		switch m.kind {
		case kindOffers, kindAnswer, kindNack:
			switch num {
			case fInfoHash:
				return setHash(&m.infoHash, typ, v)
			case fFrom:
				return setHash(&m.from, typ, v)
			}
			if m.kind == kindAnswer {
				switch num {
				case fTo:
					return setHash(&m.to, typ, v)
				case fOfferID:
					return setHash(&m.offerID, typ, v)
				case fSDP:
					if typ != protowire.BytesType {
						return msgErr("sdp")
					}
					m.sdp = v
				}
			}
			if m.kind == kindOffers && num == fOffer {
				if typ != protowire.BytesType {
					return msgErr("offer")
				}
				if len(m.offers) == maxBatch {
					return msgErr("more than %d offers", maxBatch)
				}
				o, err := decodeOffer(v)
				if err != nil {
					return err
				}
				m.offers = append(m.offers, o)
			}
		case kindWant, kindHave:
			switch num {
			case fKey:
				if typ != protowire.BytesType || len(v) != len(m.key) {
					return msgErr("room key")
				}
				copy(m.key[:], v)
			case fPeers, fTTL:
				if typ != protowire.VarintType || x > 1<<31 {
					return msgErr("count")
				}
				if num == fPeers {
					m.peers = uint32(x)
				} else {
					m.ttl = uint32(x)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var need uint32
	switch m.kind {
	case kindOffers:
		need = 1<<fInfoHash | 1<<fFrom | 1<<fOffer
	case kindAnswer:
		need = 1<<fInfoHash | 1<<fFrom | 1<<fTo | 1<<fOfferID | 1<<fSDP
	case kindNack:
		need = 1<<fInfoHash | 1<<fFrom
	case kindWant:
		need = 1<<fKey | 1<<fTTL
	case kindHave:
		need = 1 << fKey
	}
	if seen&need != need {
		return msgErr("%v lacks a field", m.kind)
	}
	if m.kind == kindAnswer {
		if err := checkSDP(m.sdp); err != nil {
			return err
		}
	}
	return nil
}

// fields calls f for each field of a message; for varints v is nil and x
// the value, for bytes v is the value.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > 30 {
			return msgErr("bad tag")
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return msgErr("bad field %d", num)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func setHash(h *wire.Hash, typ protowire.Type, v []byte) error {
	if typ != protowire.BytesType || len(v) != len(h) {
		return msgErr("a 20-byte id has %d bytes", len(v))
	}
	copy(h[:], v)
	return nil
}

func decodeOffer(b []byte) (o wire.Offer, err error) {
	var seen uint32
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		seen |= 1 << num
		switch num {
		case 1:
			return setHash(&o.ID, typ, v)
		case 2:
			if typ != protowire.BytesType {
				return msgErr("sdp")
			}
			o.SDP = v
		}
		return nil
	})
	if err != nil {
		return o, err
	}
	if seen&6 != 6 {
		return o, msgErr("offer lacks a field")
	}
	return o, checkSDP(o.SDP)
}

// checkSDP accepts what the tracker would relay from a browser: one JSON
// value, not false/null/0/"", at most MaxSDPBytes. The tracker copies it
// into its messages verbatim, so anything else could break or forge them.
func checkSDP(v []byte) error {
	switch {
	case len(v) == 0 || len(v) > MaxSDPBytes:
		return msgErr("sdp of %d bytes", len(v))
	case !jsontext.Value(v).IsValid(jsontext.AllowDuplicateNames(true)):
		return msgErr("sdp is not one JSON value")
	}
	switch string(v) {
	case "false", "null", "0", `""`:
		return msgErr("sdp is empty")
	}
	return nil
}
