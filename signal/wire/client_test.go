package wire_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/boxsignal/boxsignal/signal/wire"
)

// This file writes client messages the way webtorrent's tracker client puts
// them on the wire (bugout-wire.md §3.1), so tests and fuzz targets can build
// inputs and re-encode what Decode returned.

// jsQuote appends s as JavaScript's JSON.stringify writes a string: only
// '"', '\' and code points below U+0020 are escaped (\b \t \n \f \r, else
// \u00xx); everything else, U+0080–U+00FF included, goes out as raw UTF-8.
func jsQuote(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\b':
			dst = append(dst, `\b`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\f':
			dst = append(dst, `\f`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r < 0x20:
			dst = append(dst, `\u00`...)
			dst = append(dst, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xF])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}

// binary is h as Buffer.toString('binary') makes it: one code point per byte.
func binary(h wire.Hash) string {
	r := make([]rune, len(h))
	for i, b := range h {
		r[i] = rune(b)
	}
	return string(r)
}

// jsBinary is the JSON literal a JavaScript client sends for h.
func jsBinary(h wire.Hash) string { return string(jsQuote(nil, binary(h))) }

// unbinary maps the code points of a decoded JSON string back to bytes; ok
// is false unless there are exactly 20, each at most U+00FF.
func unbinary(s string) (h wire.Hash, ok bool) {
	n := 0
	for _, r := range s {
		if r > 0xFF || n == len(h) {
			return h, false
		}
		h[n] = byte(r)
		n++
	}
	return h, n == len(h)
}

// hash makes a distinct 20-byte value from a label, with a NUL, a quote, a
// backslash and bytes over 0x7F in it, so every escaping path is taken.
func hash(label string) wire.Hash {
	var h wire.Hash
	for i := range h {
		h[i] = byte(0x80 + i*37)
	}
	h[0], h[1], h[2] = 0x00, '"', '\\'
	copy(h[3:], label)
	return h
}

func mustHex(t testing.TB, s string) wire.Hash {
	t.Helper()
	h, ok := wire.HashFromHex(s)
	if !ok {
		t.Fatalf("HashFromHex(%q) failed", s)
	}
	return h
}

// obj builds a JSON object from alternating keys and raw JSON values, in
// the order given (clients' key order matters to nothing but realism).
func obj(kv ...string) string {
	b := []byte{'{'}
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, kv[i])
		b = append(b, ':')
		b = append(b, kv[i+1]...)
	}
	return string(append(b, '}'))
}

// encodeRequest writes r back as a client message: what a client would have
// sent to make Decode return r (less the offers it dropped).
func encodeRequest(r *wire.Request) []byte {
	var b []byte
	key := func(k string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
	}
	bin := func(k string, h *wire.Hash) {
		key(k)
		b = jsQuote(b, binary(*h))
	}
	b = append(b, '{')
	if r.Action == wire.ActionScrape {
		key("action")
		b = append(b, `"scrape"`...)
		if !r.AllSwarms {
			key("info_hash")
			b = append(b, '[')
			for i := range r.InfoHashes {
				if i > 0 {
					b = append(b, ',')
				}
				b = jsQuote(b, binary(r.InfoHashes[i]))
			}
			b = append(b, ']')
		}
	} else {
		if r.Numwant >= 0 {
			key("numwant")
			b = strconv.AppendInt(b, int64(r.Numwant), 10)
		}
		key("left")
		if r.Seeder {
			b = append(b, '0')
		} else {
			b = append(b, '1')
		}
		key("event")
		b = jsQuote(b, r.Event.String())
		key("action")
		b = append(b, `"announce"`...)
		bin("info_hash", &r.InfoHash)
		bin("peer_id", &r.PeerID)
		if r.IsAnswer() {
			bin("to_peer_id", &r.ToPeerID)
			key("answer")
			b = append(b, r.Answer...)
			bin("offer_id", &r.OfferID)
		}
	}
	if len(r.Offers) > 0 {
		key("offers")
		b = append(b, '[')
		for i, o := range r.Offers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"offer":`...)
			b = append(b, o.SDP...)
			b = append(b, `,"offer_id":`...)
			b = jsQuote(b, binary(o.ID))
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// decoded is a Request in a form that compares with == semantics and prints
// readably: hashes in hex ("" when absent), raw JSON as strings.
type decoded struct {
	Action    wire.Action
	InfoHash  string
	PeerID    string
	Event     wire.Event
	Numwant   int
	Seeder    bool
	Offers    []string // "<offer_id hex> <raw offer>"
	Dropped   int
	Answer    string
	ToPeerID  string
	OfferID   string
	Scrape    []string
	AllSwarms bool
}

func hexOf(h wire.Hash) string {
	if h == (wire.Hash{}) {
		return ""
	}
	return hex.EncodeToString(h[:])
}

func summarize(r *wire.Request) decoded {
	d := decoded{
		Action: r.Action, PeerID: hexOf(r.PeerID), Event: r.Event, Numwant: r.Numwant, Seeder: r.Seeder,
		Dropped: r.DroppedOffers, Answer: string(r.Answer), ToPeerID: hexOf(r.ToPeerID), OfferID: hexOf(r.OfferID),
		AllSwarms: r.AllSwarms,
	}
	if r.HasInfoHash {
		d.InfoHash = r.InfoHash.String()
	}
	for _, o := range r.Offers {
		d.Offers = append(d.Offers, o.ID.String()+" "+string(o.SDP))
	}
	if r.Action == wire.ActionScrape {
		for _, h := range r.InfoHashes {
			d.Scrape = append(d.Scrape, h.String())
		}
		d.Offers, d.Dropped = nil, 0 // a scrape's offers mean nothing
	}
	return d
}

func (d decoded) equal(e decoded) bool { return reflect.DeepEqual(d, e) }

// readFrame loads a client frame from testdata.
func readFrame(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}
