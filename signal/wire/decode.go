package wire

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// Error is a request the tracker refuses. Reason is the "failure reason" the
// client is sent; the strings follow bittorrent-tracker 9.19 where it has one.
type Error struct{ Reason string }

func (e *Error) Error() string { return "tracker request: " + e.Reason }

func fail(reason string) error { return &Error{Reason: reason} }

// Failure reasons that have no argument.
var (
	ErrInvalidJSON     = fail("invalid JSON")
	ErrNotObject       = fail("invalid request: not a JSON object")
	ErrInvalidInfoHash = fail("invalid info_hash")
	ErrInvalidPeerID   = fail("invalid peer_id")
	ErrInvalidToPeerID = fail("invalid `to_peer_id` (required with `answer`)")
	ErrInvalidOfferID  = fail("invalid offer_id")
	ErrInvalidEvent    = fail("invalid event")
	ErrInvalidOffers   = fail("invalid offers")
	ErrSDPTooLarge     = fail("offer or answer too large")
	ErrTooManyHashes   = fail("too many info_hashes")
)

type decoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

var decodeOptions = jsontext.AllowDuplicateNames(true) // JSON.parse keeps the last; so do we

// Decode parses one client message into req, which it resets first. On error
// req holds what was read before it (Action and InfoHash are set when they
// were readable, for the failure reply), and the error is an *Error.
//
// Decode is safe for concurrent use with distinct reqs. It allocates only to
// grow req's slices.
func Decode(data []byte, req *Request, lim Limits) error {
	req.Reset()
	lim = lim.withDefaults()
	d := decoders.Get().(*decoder)
	defer func() {
		d.buf = bytes.Buffer{}
		d.dec.Reset(&d.buf) // drop the reference to data
		decoders.Put(d)
	}()
	d.buf = *bytes.NewBuffer(data)
	d.dec.Reset(&d.buf, decodeOptions)
	return d.request(req, lim)
}

// fields holds the raw values of the keys a request may carry, so they can
// be checked in bittorrent-tracker's order whatever order they came in.
type fields struct {
	action, infoHash, peerID, toPeerID, offerID, event, numwant, left, answer []byte
	hasLeft                                                                   bool
	offersErr                                                                 error
}

func (d *decoder) request(req *Request, lim Limits) error {
	tok, err := d.dec.ReadToken()
	if err != nil {
		return ErrInvalidJSON
	}
	if tok.Kind() != '{' {
		return ErrNotObject
	}
	var f fields
	for d.dec.PeekKind() != '}' {
		var tmp [32]byte
		name, err := d.name(tmp[:0])
		if err != nil {
			return err
		}
		if string(name) == "offers" {
			if err := d.offers(req, lim, &f); err != nil {
				return err
			}
			continue
		}
		v, err := d.dec.ReadValue()
		if err != nil {
			return ErrInvalidJSON
		}
		switch string(name) {
		case "action":
			f.action = v
		case "info_hash":
			f.infoHash = v
		case "peer_id":
			f.peerID = v
		case "to_peer_id":
			f.toPeerID = v
		case "offer_id":
			f.offerID = v
		case "event":
			f.event = v
		case "numwant":
			f.numwant = v
		case "left":
			f.left, f.hasLeft = v, true
		case "answer":
			f.answer = v
		}
	}
	if _, err := d.dec.ReadToken(); err != nil { // '}'
		return ErrInvalidJSON
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return ErrInvalidJSON // trailing data
	}
	return f.interpret(req, lim)
}

// name reads an object member name, unescaped into buf when it has escapes.
func (d *decoder) name(buf []byte) ([]byte, error) {
	name, err := d.dec.ReadValue()
	if err != nil {
		return nil, ErrInvalidJSON
	}
	if bytes.IndexByte(name, '\\') < 0 {
		return name[1 : len(name)-1], nil
	}
	if name, err = unquote(buf, name); err != nil {
		return nil, ErrInvalidJSON
	}
	return name, nil
}

// plain returns a raw JSON string value without escapes (re-quoted), so it
// can be compared with a literal; other values come back unchanged.
func plain(v []byte) []byte {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') < 0 {
		return v
	}
	u, err := unquote([]byte{'"'}, v)
	if err != nil {
		return v
	}
	return append(u, '"')
}

// offers reads the "offers" array. Elements are objects with "offer" (any
// JSON, relayed raw) and "offer_id" (binary string); a null array is none.
func (d *decoder) offers(req *Request, lim Limits, f *fields) error {
	switch d.dec.PeekKind() {
	case 'n':
		_, err := d.dec.ReadToken()
		return jsonErr(err)
	case '[':
	default:
		f.offersErr = ErrInvalidOffers
		return jsonErr(d.dec.SkipValue())
	}
	req.Offers = req.Offers[:0] // a repeated key keeps the last, as JSON.parse does
	req.DroppedOffers = 0
	if _, err := d.dec.ReadToken(); err != nil {
		return ErrInvalidJSON
	}
	for d.dec.PeekKind() != ']' {
		if d.dec.PeekKind() != '{' || len(req.Offers) >= lim.MaxOffers {
			if d.dec.PeekKind() != '{' {
				f.offersErr = ErrInvalidOffers
			} else {
				req.DroppedOffers++
			}
			if err := d.dec.SkipValue(); err != nil {
				return ErrInvalidJSON
			}
			continue
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return ErrInvalidJSON
		}
		var o Offer
		var hasID bool
		for d.dec.PeekKind() != '}' {
			var tmp [32]byte
			name, err := d.name(tmp[:0])
			if err != nil {
				return err
			}
			v, err := d.dec.ReadValue()
			if err != nil {
				return ErrInvalidJSON
			}
			switch string(name) {
			case "offer":
				o.SDP = v
			case "offer_id":
				hasID = parseBinary(v, &o.ID)
			}
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return ErrInvalidJSON
		}
		switch {
		case !hasID:
			f.offersErr = ErrInvalidOfferID
		case !truthy(o.SDP):
			f.offersErr = ErrInvalidOffers
		case len(o.SDP) > lim.MaxSDPBytes:
			f.offersErr = ErrSDPTooLarge
		default:
			req.Offers = append(req.Offers, o)
		}
	}
	_, err := d.dec.ReadToken() // ']'
	return jsonErr(err)
}

func jsonErr(err error) error {
	if err != nil {
		return ErrInvalidJSON
	}
	return nil
}

// interpret checks the fields in bittorrent-tracker's order and fills req.
func (f *fields) interpret(req *Request, lim Limits) error {
	f.action, f.event = plain(f.action), plain(f.event)
	switch string(f.action) {
	case `"announce"`:
		req.Action = ActionAnnounce
	case `"scrape"`:
		req.Action = ActionScrape
		return f.scrape(req, lim)
	default:
		a := "undefined"
		if f.action != nil {
			a = string(f.action)
			if s, err := unquote(nil, f.action); err == nil {
				a = string(s)
			}
			if len(a) > 64 {
				a = a[:64]
			}
		}
		return fail("invalid action in WS request: " + a)
	}

	if !parseBinary(f.infoHash, &req.InfoHash) {
		return ErrInvalidInfoHash
	}
	req.HasInfoHash = true
	if !parseBinary(f.peerID, &req.PeerID) {
		return ErrInvalidPeerID
	}
	if truthy(f.answer) {
		if !parseBinary(f.toPeerID, &req.ToPeerID) {
			return ErrInvalidToPeerID
		}
		if !parseBinary(f.offerID, &req.OfferID) {
			return ErrInvalidOfferID
		}
		if len(f.answer) > lim.MaxSDPBytes {
			return ErrSDPTooLarge
		}
		req.Answer = f.answer
	}
	switch string(f.event) {
	case "", "null", `""`, `"update"`, `"empty"`:
		req.Event = EventUpdate
	case `"started"`:
		req.Event = EventStarted
	case `"stopped"`:
		req.Event = EventStopped
	case `"completed"`:
		req.Event = EventCompleted
	case `"paused"`:
		req.Event = EventPaused
	default:
		return ErrInvalidEvent
	}
	if f.offersErr != nil {
		return f.offersErr
	}
	if n, ok := number(f.numwant); ok && n >= 0 {
		req.Numwant = int(min(n, 1<<20))
	}
	// left: null is what a magnet client sends before it has metadata
	// (JSON.stringify(NaN)): a leecher, although Number(null) is 0.
	if f.hasLeft && string(f.left) != "null" {
		n, ok := number(f.left)
		req.Seeder = ok && n == 0
	}
	return nil
}

func (f *fields) scrape(req *Request, lim Limits) error {
	v := f.infoHash
	switch {
	case v == nil || string(v) == "null":
		req.AllSwarms = true
	case v[0] == '"':
		if !parseBinary(v, &req.InfoHash) {
			return ErrInvalidInfoHash
		}
		req.HasInfoHash = true
		req.InfoHashes = append(req.InfoHashes, req.InfoHash)
	case v[0] == '[':
		dec := jsontext.NewDecoder(bytes.NewBuffer(v))
		dec.ReadToken()
		for dec.PeekKind() != ']' {
			e, err := dec.ReadValue()
			if err != nil {
				return ErrInvalidJSON
			}
			if len(req.InfoHashes) == lim.MaxInfoHashes {
				return ErrTooManyHashes
			}
			var h Hash
			if !parseBinary(e, &h) {
				return ErrInvalidInfoHash
			}
			req.InfoHashes = append(req.InfoHashes, h)
		}
		if len(req.InfoHashes) == 1 {
			req.InfoHash, req.HasInfoHash = req.InfoHashes[0], true
		}
	default:
		return ErrInvalidInfoHash
	}
	return nil
}

// truthy reports whether a raw JSON value is truthy in JavaScript.
func truthy(v []byte) bool {
	switch string(v) {
	case "", "null", "false", `""`:
		return false
	}
	if n, ok := number(v); ok && v[0] != '"' {
		return n != 0
	}
	return true
}

// number reads a raw JSON number, or a string holding one, the way
// JavaScript's Number() does for the values clients send; null is 0.
func number(v []byte) (float64, bool) {
	switch {
	case len(v) == 0:
		return 0, false
	case string(v) == "null", string(v) == "false", string(v) == `""`:
		return 0, true
	case string(v) == "true":
		return 1, true
	case v[0] == '"':
		s, err := unquote(nil, v)
		if err != nil {
			return 0, false
		}
		v = bytes.TrimSpace(s)
		if len(v) == 0 {
			return 0, true
		}
	case v[0] == '[' || v[0] == '{':
		return 0, false
	}
	n, err := strconv.ParseFloat(string(v), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return n, n == n // NaN is not a number
}

// unquote appends the contents of the raw JSON string v to dst.
func unquote(dst, v []byte) ([]byte, error) { return jsontext.AppendUnquote(dst, v) }
